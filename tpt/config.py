"""The config schema: dataclasses that Hydra's ConfigStore holds (tpt.compose registers them).

conf/config.yaml lists `tpt_schema` first, so a misspelt key or a wrong type fails at compose time
with Hydra's message. The schema's defaults are the paper's GSM8K setting; YAML files under conf/
hold only what differs from them. Value checks live in tpt.validate, the cell's directory name and
pinned config in tpt.naming.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import II, MISSING


class ConfigError(ValueError):
    """A config value that is well-typed but impossible (e.g. data.size=0)."""


def schema_fields(schema) -> Dict[str, Optional[type]]:
    """A structured config class's keys, each with the structured config it holds (None for a value)."""
    out: Dict[str, Optional[type]] = {}
    for f in dataclasses.fields(schema):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = type(value) if dataclasses.is_dataclass(value) else None
    return out


def schema_has_key(schema, dotted: str) -> bool:
    """Whether a structured config class has the (nested) key `a.b.c`."""
    for part in dotted.split("."):
        if schema is None or part not in schema_fields(schema):
            return False
        schema = schema_fields(schema)[part]
    return True


@dataclass
class ModelConfig:
    name: str = MISSING  # preset name, shown in logs and tables
    # A hub id ("google/gemma-2-2b-it"), a local directory, or "embedded:smollm2-135m-instruct".
    id: str = MISSING
    revision: Optional[str] = None
    lr: float = MISSING  # the paper's fine-tuning learning rate for this family
    # Gemma's chat template has no system role: the system prompt is folded into the first user turn.
    # null: found out from the model's chat template when the cell starts (and pinned in run_config.yaml)
    system_role: Optional[bool] = True
    dtype: str = "auto"  # generation precision; auto: bfloat16 on GPUs and CPUs that compute it natively, else float32
    tensor_parallel_size: int = 1
    # How training runs: a key of tpt.training.strategies.STRATEGIES (one spawned process on one GPU, or
    # accelerate launch over gpus x nodes); each preset says which
    train_strategy: str = MISSING
    gradient_checkpointing: bool = False  # recompute activations: less memory for the big presets
    # fsdp: keep the sharded weights, gradients and optimizer states in CPU memory between uses (the 70B preset)
    offload_params: bool = False
    # What one cell of this model asks a cluster for (cluster=slurm reads these by default).
    gpus: int = 0
    nodes: int = 1
    cpus: int = 2
    mem_gb: int = 8
    timeout_min: int = 60


@dataclass
class CodeConfig:
    """Code tasks: which tests judge a program, and the sandbox's limits."""

    tests: List[str] = field(default_factory=lambda: ["public", "private", "generated"])  # run in this order
    max_tests: Optional[int] = None  # cap per problem; null = all of the selected tests
    eval_split: str = "test"
    drop_image_problems: bool = True  # codecontests: eval on statements without <image> (the paper's 140)
    default_time_limit_s: float = 2.0  # CPU seconds per test for problems without their own limit
    time_limit_scale: float = 1.0  # multiplies every limit (contest limits are set for C++)
    default_memory_mb: int = 256  # for problems without their own limit
    max_output_mb: int = 64  # largest stdout or file a program may write
    # Wall seconds a failing program's tests may take in all: after a failure, tests run on until one
    # passes (a soft positive) or this is spent (the verdict says budget_spent)
    program_budget_s: float = 120.0
    max_processes: int = 16
    workers: Optional[int] = None  # programs run at once; null = the CPUs this process may use
    # required: programs run only inside bubblewrap's namespaces under the seccomp filter, and a cell refuses
    # to start where they are missing; none: run them with the limits only (untrusted code on the host),
    # which the run's preflight.json, its screen and the report say
    isolation: str = "required"
    python: Optional[str] = None  # interpreter for programs under test; null = one the sandbox uid can run


@dataclass
class TaskConfig:
    """What every task has. The two kinds' settings extend it (below), and a task's own settings extend
    those in its module (tpt/tasks/<name>.py): a composed cell shows only its task's keys, and a key of
    another task's is refused at compose time."""

    name: str = MISSING  # a key of tpt.tasks.TASKS
    path: Optional[str] = None  # local folder with the task's files (instead of the hub)
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    eval_questions: int = 500  # fixed eval subset (paper: 500 GSM8K test questions)
    eval_seed: int = 0
    train_questions: Optional[int] = None  # cap on the train questions used per round; null = all
    few_shot: int = 0  # worked examples from the train split shown in the prompt
    # A generated task's problem set (the bundled ones: arith, minicode, and so a miniature's); a task read
    # from data has none. Each generated task sets its own default.
    seed: Optional[int] = None
    # Train questions sharing a word n-gram of this length with an eval question are reported in the run
    # directory's contamination.json (tpt/contamination.py: 8, open-r1's default; GPT-3 used 13), and
    # dropped before thinking with decontaminate=true.
    contamination_ngram: int = 8
    decontaminate: bool = False
    # ngram: the n-gram rule above (data sets); exact: a train item overlaps only when it contains a whole
    # eval question (tasks generated from templates, whose questions share phrases by construction)
    contamination: str = "ngram"
    # What the prompt asks before the problem; null: the answer rule's (tpt.verify.math.INSTRUCTIONS)
    instruction: Optional[str] = None
    system_prompt: Optional[str] = None  # null keeps the model's own default


@dataclass
class MathTaskConfig(TaskConfig):
    """Math tasks: an answer judged as a number (gsm8k's `#### N`) or symbolically (math500)."""

    # Where the judged answer is (tpt.verify.math.RULES): hash (`#### N`, as GSM8K) | boxed (the last
    # \boxed{}, a number) | last_number | math (the last \boxed{}, judged by math-verify)
    answer: str = "hash"
    # Which `#### N` is the answer. lm_eval: the first match of lm-evaluation-harness's strict-match
    # regex (the standard); whole_line: the first `####` line, which must hold only a number
    strict_match: str = "lm_eval"


@dataclass
class CodeTaskConfig(TaskConfig):
    """Code tasks: programs judged on tests in the sandbox (codecontests, leetcode)."""

    code: CodeConfig = field(default_factory=CodeConfig)


@dataclass
class DataConfig:
    size: int = 2000  # examples kept for fine-tuning each round (paper: 2,000 on GSM8K)
    # Multiplies size (and source.human_size): a CPU miniature (miniature=true) runs a paper row's sizes scaled down
    scale: float = 1.0
    seed: int = 0
    accumulate: bool = False  # paper default: each round replaces the data
    # Unique examples kept per question (the paper: one, "a single, unique example per question per round")
    per_question: int = 1
    # When fewer questions have a kept sample than data.size asks for: resample (draw think.n more samples
    # for the questions without one, up to resample_batches times, then go on with what there is) | warn
    # (train on what there is) | fail (stop the cell, naming the fix). The reached size is reported either way.
    shortfall: str = "resample"
    resample_batches: int = 4


@dataclass
class PruningConfig:
    """Which pruning rule (conf/pruning/ sets it); a rule with parameters extends this with its own
    (tpt/pruning.py), which its conf/pruning/<name>.yaml names."""

    strategy: str = MISSING  # a key of tpt.pruning.RULES


@dataclass
class SamplingConfig:
    """How one stage samples: think (paper: 10 samples at T=0.8) or eval."""

    n: int = 10  # samples per question
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: List[str] = field(default_factory=list)  # extra stop strings (answers also end at `#### N` / a code block)
    batch_size: int = 32  # backend=hf: sequences per generate call (vLLM batches continuously)
    # Questions per chunk: the unit the stage resumes from, caches and shares out (tpt/stages/generation.py)
    chunk_size: int = 256
    array_tasks: int = 0  # > 0: generate the chunks in a SLURM job array of this many tasks (tpt/stages/array.py)


@dataclass
class EvalConfig(SamplingConfig):
    n: int = 20
    temperature: float = 0.7
    seed: int = 1
    k: List[int] = field(default_factory=lambda: [1, 20])  # Pass@k and Correct@k for each k


@dataclass
class BackendConfig:
    """The generation engine that serves think and eval (tpt.backends.BACKENDS)."""

    name: str = MISSING  # a key of tpt.backends.BACKENDS, or auto (conf/backend/ sets it)
    # vllm only. GPU: the share of GPU memory for weights + KV cache. CPU: the KV cache in GiB
    # (null: a quarter of the machine's memory, at most 16). The context length (null: the model's;
    # on CPU at most 8192). enforce_eager skips compiling (null: true on CPU, false on GPU).
    gpu_memory_utilization: float = 0.9
    kv_cache_gb: Optional[float] = None
    # Engines sharing a stage's chunks (vllm). null: the cell's GPUs / model.tensor_parallel_size; 1 on a CPU
    replicas: Optional[int] = None
    max_model_len: Optional[int] = None
    enforce_eager: Optional[bool] = None


@dataclass
class TrainConfig:
    lr: float = II("model.lr")  # the model preset's (the paper's) unless set
    epochs: float = 1.0
    # Examples per optimizer step, whatever the GPUs: the same data makes the same steps on 1 GPU or 16
    # (the paper states no batch size; 16 is the smallest the 16-GPU 70B preset can take)
    global_batch_size: int = 16
    # Examples per device per forward pass, at most (memory): each process takes the largest divisor of
    # its share of the global batch up to this; gradient accumulation makes up the rest
    batch_size: int = 8
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    # Tokens per example. null: the longest example, so none is cut (prompt + at most think.max_new_tokens);
    # a number caps memory: longer examples are dropped whole and counted (train/result.json too_long)
    max_length: Optional[int] = None
    # Checkpoints in the run directory: all (every round's M_i) | last (earlier ones are deleted once the
    # next is trained; the checkpoint cache keeps its own links). Saved in the base model's dtype.
    keep: str = "all"
    gradient_checkpointing: bool = II("model.gradient_checkpointing")
    offload_params: bool = II("model.offload_params")  # fsdp only
    seed: int = 0
    logging_steps: int = 1
    # bf16 mixed precision (fp32 weights); null: on GPUs and on CPUs that compute bf16 natively
    bf16: Optional[bool] = None
    strategy: str = II("model.train_strategy")  # a key of tpt.training.strategies.STRATEGIES
    processes_per_node: int = II("cluster.gpus")  # ddp / fsdp: one process per GPU
    nodes: int = II("cluster.nodes")


@dataclass
class LoggerConfig:
    backend: str = "none"  # none | wandb (metrics.jsonl is always written)
    project: str = "tpt"
    entity: Optional[str] = None
    mode: str = "auto"  # auto: online with an API key, else offline


@dataclass
class SourceConfig:
    """Where each round's training data comes from (the paper's ablations)."""

    kind: str = MISSING  # a key of tpt.sources.SOURCES (conf/source/ sets it)
    teacher: Optional[str] = None  # distill: the teacher's id (hub id, local directory, embedded:...)
    teacher_revision: Optional[str] = None
    human_size: int = 0  # mixed: how many of data.size examples are human solutions (rest: self)
    keep_annotations: bool = False  # human GSM8K solutions: keep the <<a*b=c>> calculator annotations


@dataclass
class CacheConfig:
    """Work shared by every cell and sweep on a machine (tpt/cache.py)."""

    enabled: bool = True  # cache=off sets false: nothing is read from or written to the cache
    dir: Optional[str] = None  # null: <TPT_CACHE_DIR or ~/.cache/tpt>; holds generations/, verdicts/, trained/
    trained: bool = True  # reuse a checkpoint trained before from the same parent, data and train settings
    # Checkpoints enter the cache as hard links to the run's files; across filesystems, copy them (disk, quota)?
    copy_checkpoints: bool = False
    verdicts: bool = True  # reuse code verdicts of the same programs on the same tests and limits
    # The longest a job waits for another computing the same cache entry before computing it too (a lock
    # held by a dead node on some cluster filesystems would otherwise hold it forever).
    lock_wait_s: float = 3600.0


@dataclass
class ClusterConfig:
    """Where cells run: `local` (in this process) or `slurm` (one job per cell, tpt/cluster.py)."""

    backend: str = "local"
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    # Per cell: the model preset's, unless overridden (cluster.gpus=2).
    gpus: int = II("model.gpus")
    nodes: int = II("model.nodes")
    cpus: int = II("model.cpus")
    mem_gb: int = II("model.mem_gb")
    timeout_min: int = II("model.timeout_min")
    gpu_memory_gb: Optional[float] = None  # memory of one GPU, for the plan's fit checks (null: 80, an A100/H100)
    array_parallelism: int = 64  # cells of one sweep running at once
    max_requeues: int = 3  # timeouts requeued by submitit; preemptions are always requeued
    setup: List[str] = field(default_factory=list)  # shell lines run in the job before tpt starts
    snapshot: bool = True  # jobs run from a copy of the code taken at submit time
    sbatch: Dict[str, Any] = field(default_factory=dict)  # further sbatch flags: +cluster.sbatch.constraint=a100


@dataclass
class Config:
    name: str = "tpt"  # experiment name: runs land in outputs/<name>/<overrides>
    rounds: int = 4
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    think: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    paper_row: Optional[str] = None  # the row of the paper's tables this cell reproduces (conf/row/, tpt.paper)
    # Run this cell as a CPU miniature: the embedded default model and a CPU-sized task (tpt/miniature.py)
    miniature: bool = False
    miniature_of: Optional[str] = None
    # Everything on the screen too (libraries' logs, engines' output, progress bars); else in launch.log only
    verbose: bool = False  # set by the miniature's composition: the task its bundled one stands in for
