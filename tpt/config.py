"""The config schema (dataclasses in Hydra's ConfigStore) and the value checks that need more than a type.

conf/config.yaml lists `tpt_schema` first, so a misspelt key or a wrong type fails at compose time
with Hydra's message. The schema's defaults are the paper's GSM8K setting; YAML files under conf/
hold only what differs from them. `validate` rejects impossible values before any compute.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that is well-typed but impossible (e.g. data.size=0)."""


@dataclass
class ModelConfig:
    name: str = MISSING  # preset name, shown in logs and tables
    # A hub id ("google/gemma-2-2b-it"), a local directory, or "embedded:smollm2-135m-instruct".
    id: str = MISSING
    revision: Optional[str] = None
    lr: float = MISSING  # the paper's fine-tuning learning rate for this family
    # Gemma's chat template has no system role: the system prompt is folded into the first user turn.
    system_role: bool = True
    dtype: str = "auto"  # generation precision; auto: float32 on CPU, bfloat16 on GPU
    tensor_parallel_size: int = 1
    # How training runs: single (one process) | ddp | fsdp (accelerate launch over gpus x nodes).
    train_strategy: str = "single"
    gradient_checkpointing: bool = False  # recompute activations: less memory for the big presets
    # What one cell of this model asks a cluster for (cluster=slurm reads these by default).
    gpus: int = 0
    nodes: int = 1
    cpus: int = 2
    mem_gb: int = 8
    timeout_min: int = 60


@dataclass
class MiniCodeConfig:
    """Bundled generator of small stdin/stdout code problems (tpt/tasks/minicode.py): 88 in all."""

    n_train: int = 56
    n_test: int = 32
    tests: int = 3  # per problem
    seed: int = 4321


@dataclass
class ArithConfig:
    """Bundled generator of GSM8K-format problems: a start value, then `steps` purchases."""

    n_train: int = 1000
    n_test: int = 500
    min_steps: int = 1
    max_steps: int = 2
    start_min: int = 2
    start_max: int = 9
    operand_min: int = 1
    operand_max: int = 9
    seed: int = 1234


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
    max_processes: int = 16
    workers: Optional[int] = None  # programs run at once; null = the CPUs this process may use
    python: Optional[str] = None  # interpreter for programs under test; null = one the sandbox uid can run


@dataclass
class TaskConfig:
    name: str = MISSING  # a key of tpt.tasks.TASKS
    path: Optional[str] = None  # local folder with the task's files (instead of the hub)
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    eval_questions: int = 500  # fixed eval subset (paper: 500 GSM8K test questions)
    eval_seed: int = 0
    train_questions: Optional[int] = None  # cap on the train questions used per round; null = all
    few_shot: int = 0  # worked examples from the train split shown in the prompt
    instruction: str = (
        "Solve the problem step by step. Write each step on its own line, "
        "then end with a final line of the form '#### <number>'."
    )
    system_prompt: Optional[str] = None  # null keeps the model's own default
    # math: which `#### N` is the answer. lm_eval: the first match of lm-evaluation-harness's
    # strict-match regex (the standard); whole_line: the first `####` line, which must hold only a number
    strict_match: str = "lm_eval"
    arith: ArithConfig = field(default_factory=ArithConfig)
    minicode: MiniCodeConfig = field(default_factory=MiniCodeConfig)
    code: CodeConfig = field(default_factory=CodeConfig)


@dataclass
class DataConfig:
    size: int = 2000  # examples kept for fine-tuning each round (paper: 2,000 on GSM8K)
    # Multiplies size (and source.human_size): a CPU miniature (miniature=true) runs a paper row's sizes scaled down
    scale: float = 1.0
    seed: int = 0
    accumulate: bool = False  # paper default: each round replaces the data


@dataclass
class PruningConfig:
    strategy: str = MISSING  # a key of tpt.stages.prune.STRATEGIES (conf/pruning/ sets it)


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
    batch_size: int = 8  # per device
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    max_length: int = 1024
    gradient_checkpointing: bool = II("model.gradient_checkpointing")
    seed: int = 0
    logging_steps: int = 1
    # bf16 mixed precision (fp32 weights); null: on GPUs and on CPUs that compute bf16 natively
    bf16: Optional[bool] = None
    strategy: str = II("model.train_strategy")  # a key of tpt.training.STRATEGIES
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

    kind: str = MISSING  # a key of tpt.stages.think.SOURCES (conf/source/ sets it)
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
    verdicts: bool = True  # reuse code verdicts of the same programs on the same tests and limits


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


# Keys (and everything under them) that do not change what a cell computes: they stay out of the
# cell's directory name and out of its pinned config, so a cell resumes under other values of them.
# Where and how fast a cell runs, not what it computes (a stage's chunks are the same whichever array
# task made them).
RERUN_FREE_KEYS = ("name", "rounds", "logger", "cache", "cluster", "task.code.workers", "think.array_tasks",
                   "eval.array_tasks")
LOGGERS = ("none", "wandb")
CLUSTERS = ("local", "slurm")


def scaled(size: int, scale: float) -> int:
    """A data size times data.scale (at least one example)."""
    return max(1, round(size * scale))


def rerun_free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RERUN_FREE_KEYS)


MAX_CELL_NAME = 200  # file names stop at 255 bytes; longer names keep a prefix and a hash of the whole


def cell_name(task_overrides: Sequence[str]) -> str:
    """A cell's directory: its overrides (sorted, as Hydra's override_dirname) without the rerun-free
    keys, '/' in values made flat; 'default' without any."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    lines = sorted(o.input_line for o in parsed if not rerun_free(o.key_or_group))
    name = ",".join(lines).replace("/", "_") or "default"
    if len(name.encode()) > MAX_CELL_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = name.encode()[: MAX_CELL_NAME - 13].decode(errors="ignore") + "-" + digest
    return name


def pinned(cfg: DictConfig) -> dict:
    """What a run directory is bound to: the resolved config without the rerun-free keys."""
    out = OmegaConf.to_container(cfg, resolve=True)
    for key in RERUN_FREE_KEYS:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return out


def register() -> None:
    ConfigStore.instance().store(name="tpt_schema", node=Config)
    if not OmegaConf.has_resolver("tpt_cell"):
        OmegaConf.register_new_resolver("tpt_cell", cell_name)
    if not OmegaConf.has_resolver("tpt_cpu"):  # a paper table's miniature lands beside it: outputs/table3_cpu
        OmegaConf.register_new_resolver("tpt_cpu", lambda miniature: "_cpu" if miniature else "")


def missing_keys(node: DictConfig, prefix: str = "") -> List[str]:
    """Keys left at `???` (interpolations to them are not followed: their target is reported)."""
    out: List[str] = []
    for key in node.keys():
        if OmegaConf.is_missing(node, key):
            out.append(f"{prefix}{key}")
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            out += missing_keys(node[key], f"{prefix}{key}.")
    return out


def check_known_keys(cfg: DictConfig) -> None:
    """Hydra lets `+think.temprature=0.1` add a key the schema does not have; nothing would read it, so
    the cell would silently compute something else. Refuse every key outside the schema."""
    import dataclasses
    import difflib

    def walk(node, schema_type, prefix: str) -> None:
        known = {f.name: f.type for f in dataclasses.fields(schema_type)}
        for key in node.keys():
            if not prefix and key == "hydra":  # Hydra's own node, present when composed with it
                continue
            if key not in known:
                path = f"{prefix}{key}"
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys here: {', '.join(known)}"
                raise ConfigError(f"invalid config: {path} is not a config key (nothing reads it){hint}")
            child = node._get_node(key)
            child_type = OmegaConf.get_type(child) if OmegaConf.is_dict(child) else None
            if child_type is not None and dataclasses.is_dataclass(child_type):
                walk(child, child_type, f"{prefix}{key}.")

    walk(cfg, Config, "")


def validate(cfg: DictConfig | Config) -> None:
    """Reject impossible values and unknown keys before any compute, naming the key."""
    from tpt.backends import AUTO, BACKENDS
    from tpt.stages.prune import STRATEGIES
    from tpt.stages.think import SOURCES
    from tpt.tasks import TASKS
    from tpt.training import TRAIN_STRATEGIES
    from tpt.verify.math import STRICT

    def need(ok: bool, key: str, why: str) -> None:
        if not ok:
            raise ConfigError(f"invalid config: {key} {why}")

    def one_of(value, known, key: str) -> None:
        need(value in known, key, f"must be one of {tuple(known)} (got {value!r})")

    missing = [k for k in missing_keys(cfg) if not k.startswith("hydra.")]  # Hydra fills its own at run time
    need(not missing, ", ".join(missing), "must be given (e.g. on the command line): it has no value here")
    check_known_keys(cfg)

    need(cfg.rounds >= 1, "rounds", f"must be >= 1 (got {cfg.rounds})")
    need(cfg.data.size >= 1, "data.size", f"must be a positive number of examples (got {cfg.data.size})")
    one_of(cfg.task.name, TASKS, "task.name")
    kind = TASKS[cfg.task.name].kind
    one_of(cfg.pruning.strategy, STRATEGIES, "pruning.strategy")
    strategy = STRATEGIES[cfg.pruning.strategy]
    need(kind in strategy.kinds, "pruning.strategy", f"{strategy.needs} (got task {cfg.task.name!r}, a {kind} task)")
    if kind == "code":
        _validate_code(cfg.task.code, need)
    one_of(cfg.task.strict_match, STRICT, "task.strict_match")
    src = cfg.source
    one_of(src.kind, SOURCES, "source.kind")
    need(src.kind != "distill" or bool(src.teacher), "source.teacher",
         "is required with source=distill (a hub id, local directory or embedded:<name>)")
    need(cfg.data.scale > 0, "data.scale", f"must be > 0 (got {cfg.data.scale})")
    need(src.kind != "mixed" or 0 < scaled(src.human_size, cfg.data.scale) < scaled(cfg.data.size, cfg.data.scale),
         "source.human_size", f"must lie between 0 and data.size={cfg.data.size} (exclusive, after data.scale="
         f"{cfg.data.scale}) with source=mixed (got {src.human_size})")
    one_of(cfg.backend.name, (*BACKENDS, AUTO), "backend.name")
    one_of(cfg.logger.backend, LOGGERS, "logger.backend")
    c = cfg.cluster
    one_of(c.backend, CLUSTERS, "cluster.backend")
    for key in ("cpus", "mem_gb", "timeout_min", "array_parallelism"):
        need(getattr(c, key) >= 1, f"cluster.{key}", f"must be >= 1 (got {getattr(c, key)})")
    need(c.nodes >= 1, "cluster.nodes", f"must be >= 1 (got {c.nodes})")
    need(c.gpus >= 0 and c.max_requeues >= 0, "cluster", f"gpus and max_requeues must be >= 0 (got {c.gpus}, {c.max_requeues})")
    need(cfg.task.eval_questions >= 1, "task.eval_questions", f"must be >= 1 (got {cfg.task.eval_questions})")
    need(cfg.task.few_shot >= 0, "task.few_shot", f"must be >= 0 (got {cfg.task.few_shot})")
    tq = cfg.task.train_questions
    need(tq is None or tq >= 1, "task.train_questions", f"must be >= 1 or null (got {tq})")
    for stage in ("think", "eval"):
        s = getattr(cfg, stage)
        need(s.n >= 1, f"{stage}.n", f"must be >= 1 (got {s.n})")
        need(s.temperature >= 0, f"{stage}.temperature", f"must be >= 0 (got {s.temperature})")
        need(0 < s.top_p <= 1, f"{stage}.top_p", f"must be in (0, 1] (got {s.top_p})")
        need(s.max_new_tokens >= 1, f"{stage}.max_new_tokens", f"must be >= 1 (got {s.max_new_tokens})")
        need(s.batch_size >= 1, f"{stage}.batch_size", f"must be >= 1 (got {s.batch_size})")
        need(s.chunk_size >= 1, f"{stage}.chunk_size", f"must be >= 1 (got {s.chunk_size})")
        need(s.array_tasks >= 0, f"{stage}.array_tasks", f"must be >= 0 (got {s.array_tasks})")
    need(0 < cfg.backend.gpu_memory_utilization <= 1, "backend.gpu_memory_utilization",
         f"must be in (0, 1] (got {cfg.backend.gpu_memory_utilization})")
    need(cfg.backend.kv_cache_gb is None or cfg.backend.kv_cache_gb > 0, "backend.kv_cache_gb",
         f"must be > 0 or null (got {cfg.backend.kv_cache_gb})")
    r = cfg.backend.replicas
    need(r is None or r >= 1, "backend.replicas", f"must be >= 1 or null (got {r})")
    need(r in (None, 1) or cfg.backend.name == AUTO or BACKENDS[cfg.backend.name].sharded, "backend.replicas",
         f"> 1 needs an engine that runs in processes of its own, as vllm (got backend={cfg.backend.name})")
    tp = cfg.model.tensor_parallel_size
    need(tp >= 1, "model.tensor_parallel_size", f"must be >= 1 (got {tp})")
    sharded_on_slurm = cfg.backend.name in BACKENDS and BACKENDS[cfg.backend.name].sharded and cfg.cluster.backend == "slurm"
    need(not sharded_on_slurm or tp <= cfg.cluster.gpus, "model.tensor_parallel_size",
         f"= {tp} needs at least as many GPUs per cell (cluster.gpus = {cfg.cluster.gpus})")
    ks = list(cfg.eval.k)
    need(len(ks) >= 1, "eval.k", "must list at least one k")
    need(all(1 <= k <= cfg.eval.n for k in ks), "eval.k", f"values must lie in 1..eval.n={cfg.eval.n} (got {ks})")
    t = cfg.train
    need(t.lr > 0, "train.lr", f"must be > 0 (got {t.lr})")
    need(t.epochs > 0, "train.epochs", f"must be > 0 (got {t.epochs})")
    need(t.batch_size >= 1, "train.batch_size", f"must be >= 1 (got {t.batch_size})")
    one_of(t.strategy, TRAIN_STRATEGIES, "train.strategy")
    need(t.strategy == "single" or (t.processes_per_node >= 1 and t.nodes >= 1), "train.processes_per_node",
         f"train.strategy={t.strategy} needs >= 1 process per node on >= 1 node (got {t.processes_per_node} x "
         f"{t.nodes}; a preset's gpus and nodes set them)")
    need(t.strategy != "single" or t.nodes == 1, "train.nodes", "> 1 needs train.strategy=ddp or fsdp")
    need(0 <= t.warmup_ratio < 1, "train.warmup_ratio", f"must be in [0, 1) (got {t.warmup_ratio})")
    a = cfg.task.arith
    need(1 <= a.min_steps <= a.max_steps, "task.arith", f"needs 1 <= min_steps <= max_steps (got {a.min_steps}, {a.max_steps})")
    need(a.start_min <= a.start_max and a.operand_min <= a.operand_max, "task.arith", "needs min <= max for start and operand ranges")
    m = cfg.task.minicode
    need(min(m.n_train, m.n_test, m.tests) >= 1, "task.minicode", f"n_train, n_test and tests must be >= 1 (got "
         f"{m.n_train}, {m.n_test}, {m.tests})")


def _validate_code(code, need) -> None:
    from tpt.tasks.base import CODE_TEST_SETS

    need(len(code.tests) >= 1 and set(code.tests) <= set(CODE_TEST_SETS), "task.code.tests",
         f"must list some of {CODE_TEST_SETS} (got {list(code.tests)})")
    need(code.max_tests is None or code.max_tests >= 1, "task.code.max_tests", f"must be >= 1 or null (got {code.max_tests})")
    need(code.default_time_limit_s > 0 and code.time_limit_scale > 0, "task.code",
         "default_time_limit_s and time_limit_scale must be > 0")
    need(code.default_memory_mb >= 16, "task.code.default_memory_mb", f"must be >= 16 (got {code.default_memory_mb})")
    need(code.max_output_mb >= 1 and code.max_processes >= 1, "task.code", "max_output_mb and max_processes must be >= 1")
    need(code.workers is None or code.workers >= 1, "task.code.workers", f"must be >= 1 or null (got {code.workers})")
    need(code.python is None or Path(code.python).is_file(), "task.code.python",
         f"must be an existing interpreter (got {code.python!r})")


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python launch.py <overrides>` would run, composed in-process (tests, benchmarks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
