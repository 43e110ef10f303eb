"""What a command would run, before any GPU-hour: `python launch.py -m <overrides> --plan` (or
`python -m tpt.plan <overrides>`) prints, for every cell, without loading a model:

- the model and what one cell asks a cluster for (GPUs, nodes, SLURM time);
- questions x samples for think and eval, and upper bounds on tokens generated and trained;
- optimizer steps per round and the global batch; disk for the checkpoints (train.keep, and the
  checkpoint cache's hard links, which keep every round's weights) and its peak during a save (the
  transient fp32 weights);
- peak memory per GPU, for training (weights, gradients, AdamW states and autocast's copy as the
  strategy holds them, activations with or without checkpointing and the logits at the bytes a token
  benchmarks/train_memory.py measured) and for vLLM (weights per tensor-parallel
  rank and the KV cache of the sequences that fit beside them, up to `vllm_sequences`), against
  `cluster.gpu_memory_gb`, for the model and for a distillation teacher (which thinks on the same
  GPUs, with the same tensor parallelism);
- code tasks: CPU-hours to judge every program on its problem's tests, at most (the sandbox's measured
  cost a run, an assumed test count);
- GPU-hours as SLURM bills them: the job's wall time (training on all its GPUs, generation on the
  engines' GPUs, at a throughput that falls with fewer sequences in flight) times the GPUs it holds,
  from the throughput assumptions below (`--assume name=value` overrides them);
- warnings: a data size that cannot be reached, or likely falls short (expected from the paper's
  own baseline, or measured by earlier runs under outputs/), examples that would be cut, a global
  batch that differs between the rows of one table, memory that does not fit;

and totals for the sweep. The figures are estimates from the models' published shapes; the warnings
are what to fix before submitting.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from tpt.commandline import check_overrides, first_line
from tpt.compose import compose
from tpt.config import ConfigError
from tpt.experiments import sweep
from tpt.paper import TABLES
from tpt.pruning import rule_of
from tpt.results import find_cells
from tpt.sources import source_of
from tpt.tasks import TASKS, DataError, load_task
from tpt.training import batch_shape, optimizer_steps, strategy_of
from tpt.validate import validate


@dataclass(frozen=True)
class Shape:
    """What the estimates need of a model (from its config.json on the hub)."""

    params: float
    hidden: int
    layers: int
    vocab: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int = 2  # bf16 weights as published
    paper_name: Optional[str] = None  # how the paper's tables name it (tpt.paper), for its baselines
    heads: int = 0  # query heads (0: hidden // head_dim)
    intermediate: int = 0  # the MLP's width (0: 4 x hidden)
    family: str = "llama"  # whose measured activation terms apply (ACTIVATION_BYTES): llama | gemma2

    @property
    def query_heads(self) -> int:
        return self.heads or self.hidden // self.head_dim

    @property
    def mlp(self) -> int:
        return self.intermediate or 4 * self.hidden


# The presets' models, from their config.json (google/gemma-2-*-it, meta-llama/Llama-3.*-Instruct,
# HuggingFaceTB/SmolLM2-135M-Instruct; the embedded copy is dequantised to fp32).
SHAPES: Dict[str, Shape] = {
    "google/gemma-2-2b-it": Shape(
        2.61e9, 2304, 26, 256000, 4, 256, paper_name="Gemma-2-2B", heads=8, intermediate=9216, family="gemma2"
    ),
    "google/gemma-2-9b-it": Shape(
        9.24e9, 3584, 42, 256000, 8, 256, paper_name="Gemma-2-9B", heads=16, intermediate=14336, family="gemma2"
    ),
    "meta-llama/Llama-3.2-1B-Instruct": Shape(
        1.24e9, 2048, 16, 128256, 8, 64, paper_name="Llama-3.2-1B-Instruct", heads=32, intermediate=8192
    ),
    "meta-llama/Llama-3.3-70B-Instruct": Shape(
        70.6e9, 8192, 80, 128256, 8, 128, paper_name="Llama-3.3-70B-Instruct", heads=64, intermediate=28672
    ),
    "embedded:smollm2-135m-instruct": Shape(0.135e9, 576, 30, 49152, 3, 64, dtype_bytes=4, heads=9, intermediate=1536),
}

# Throughput and memory assumptions: order-of-magnitude figures, not measurements. The reference GPU is
# an A100 80GB (312 TFLOP/s dense bf16). Training costs 6 x params FLOPs per token (Kaplan et al.,
# 2020) at `train_mfu` of peak; generation 2 x params FLOPs per token at `generate_utilization` (vLLM
# with hundreds of sequences in flight). `prompt_tokens.<task>` is a prompt's typical length with its
# chat template and worked examples (each task's TaskSpec states it). Measure yours with a first run
# and pass --assume name=value.
ASSUMPTIONS: Dict[str, float] = {
    "gpu_peak_tflops": 312.0,
    "gpu_memory_gb": 80.0,  # when cluster.gpu_memory_gb is null
    "train_mfu": 0.35,
    "generate_utilization": 0.3,
    "vllm_sequences": 256,  # sequences vLLM keeps in flight (its max_num_seqs): the KV cache it wants
    "overhead_gb": 3.0,  # CUDA context, NCCL buffers, allocator fragmentation per GPU
    # training activations on a GPU as a share of their measured fp32 bytes (ACTIVATION_BYTES): 1 is the
    # bound; under bf16 autocast the matmuls' outputs take half, the norms' and softmax's fp32 do not
    "activation_scale": 1.0,
    **{f"prompt_tokens.{task.name}": task.prompt_tokens for task in TASKS.values()},
    # Code verification. A program's run on one test in the sandbox: measured (bubblewrap, seccomp and
    # a cgroup per run, a short program: docs/benchmarks.md "The sandbox"); a
    # problem's tests, its TaskSpec's assumption (task.code.max_tests caps them).
    "sandbox_run_s": 0.055,
    **{f"tests_per_problem.{task.name}": task.tests_per_problem for task in TASKS.values() if task.kind == "code"},
}
GPU_MEMORY_GB = {
    "a100-40gb": 40,
    "a100-80gb": 80,
    "h100-80gb": 80,
    "h200": 141,
    "l40s": 48,
    "a10g": 24,
    "v100-32gb": 32,
}  # --gpu <name> sets cluster.gpu_memory_gb from this table


@dataclass
class CellPlan:
    overrides: List[str]
    cfg: DictConfig
    figures: Dict[str, object] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    misfits: List[str] = field(default_factory=list)  # the warnings that a GPU's memory cannot hold something


def misfits(cfg: DictConfig) -> List[str]:
    """What of a cell would not fit its GPUs by the plan's estimate (training, the model's engine, a
    teacher's): the SLURM launcher names them at submit."""
    return plan_config(cfg, [], dict(ASSUMPTIONS), None).misfits


# ---- the cells of a command -------------------------------------------------------------------------


# ---- one cell -------------------------------------------------------------------------------------


def shape_of(model_id: str) -> Optional[Shape]:
    """A preset's shape, or one read from a local model folder's config.json (None if unknown)."""
    if model_id in SHAPES:
        return SHAPES[model_id]
    config = Path(model_id).expanduser() / "config.json"
    if not config.is_file():
        return None
    c = json.loads(config.read_text())
    c = c.get("text_config", c)
    hidden, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or hidden // heads
    mlp = c.get("intermediate_size", 4 * hidden)
    params = vocab * hidden * (1 if c.get("tie_word_embeddings", True) else 2) + layers * (
        hidden * head_dim * (heads + 2 * c.get("num_key_value_heads", heads))
        + heads * head_dim * hidden
        + 3 * hidden * mlp
    )
    dtype = str(c.get("dtype") or c.get("torch_dtype") or "float32")
    return Shape(
        params,
        hidden,
        layers,
        vocab,
        c.get("num_key_value_heads", heads),
        head_dim,
        dtype_bytes=2 if "16" in dtype else 4,
        heads=heads,
        intermediate=mlp,
        family="gemma2" if c.get("model_type") == "gemma2" else "llama",
    )


def train_questions(cfg: DictConfig) -> Tuple[Optional[int], str]:
    """How many questions think samples: read from bundled or local data, else the hub set's known size."""
    if cfg.task.path or TASKS[cfg.task.name].bundled:
        try:
            return len(load_task(cfg.task).train), "read"
        except DataError as e:
            return None, f"unreadable: {e}"
    n = TASKS[cfg.task.name].hub_train_questions
    if n is None:
        return None, "unknown (set task.path)"
    n -= cfg.task.few_shot
    return (min(n, cfg.task.train_questions) if cfg.task.train_questions else n), "hub"


def paper_solve_rate(shape: Optional[Shape], task: str) -> Optional[Tuple[float, int]]:
    """The paper's own baseline of this model on this task: (Pass@k as a share, k), an upper bound on
    the share of questions with a correct sample among fewer than k."""
    if shape is None or shape.paper_name is None:
        return None
    for table in TABLES.values():
        for row in table.rows:
            if row.model == shape.paper_name and row.ours[1] == 0 and table.task_of(row) == task:
                return row.passk / 100, table.k_of(row)
    return None


def measured_solve_rate(cfg: DictConfig, runs: Optional[Path]) -> Optional[Tuple[float, int]]:
    """The share of train questions round 1's think solved in an earlier run of the same model, task
    and samples per question (under `runs`): sharper than the paper's figure."""
    if runs is None or not runs.is_dir():
        return None
    for cell in find_cells(runs):
        c = cell.config
        stats = cell.path / "round_1" / "prune" / "stats.json"
        if (
            c.get("model", {}).get("id") == cfg.model.id
            and c.get("source", {}).get("teacher") == cfg.source.get("teacher")  # the thinker's rate
            and c.get("task", {}).get("name") == cfg.task.name
            and c.get("think", {}).get("n") == cfg.think.n
            and stats.is_file()
        ):
            s = json.loads(stats.read_text())
            if s.get("questions"):
                return s["questions_with_correct"] / s["questions"], cfg.think.n
    return None


def gb(n_bytes: float) -> float:
    return n_bytes / 1e9


def plan_cell(overrides: List[str], assume: Dict[str, float], runs: Optional[Path]) -> CellPlan:
    return plan_config(compose(overrides), overrides, assume, runs)


def predicted(config: DictConfig, assume: Optional[Dict[str, float]] = None) -> Dict[str, object]:
    """What the plan predicts for a cell that ran, from the config its run directory pinned (typed
    under the schema): `tpt.report --cost` sets it beside what the cell measured."""
    return plan_config(config, [], {**ASSUMPTIONS, **(assume or {})}, None).figures


def plan_config(cfg: DictConfig, overrides: List[str], assume: Dict[str, float], runs: Optional[Path]) -> CellPlan:
    out = CellPlan(overrides, cfg)
    try:
        validate(cfg)
    except ConfigError as e:
        out.warnings.append(f"refused at launch: {e}")
        return out
    f, w = out.figures, out.warnings
    shape = shape_of(cfg.model.id)
    rounds, think, ev, tr = cfg.rounds, cfg.think, cfg.eval, cfg.train
    gpus, nodes = cfg.cluster.gpus, cfg.cluster.nodes
    f.update(model=cfg.model.name, gpus=gpus * nodes, nodes=nodes, hours=cfg.cluster.timeout_min / 60)
    teacher_id = source_of(cfg).teacher_id(cfg)[0]
    teacher = shape_of(teacher_id) if teacher_id else None
    thinker = teacher if teacher_id else shape  # whose solve rate and generation cost think has
    if teacher_id:
        f["teacher"] = teacher_id.rsplit("/", 1)[-1]

    questions, where = train_questions(cfg)
    self_size, human = source_of(cfg).sizes(cfg)
    f.update(train_questions=questions, data_size=self_size + human)
    generates = source_of(cfg).thinker is not None
    prompt = assume.get(f"prompt_tokens.{cfg.task.name}", 200)
    think_samples = (questions or 0) * think.n * rounds if generates else 0
    resampled = (
        (questions or 0) * think.n * cfg.data.resample_batches * rounds
        if generates and cfg.data.shortfall == "resample"
        else 0
    )
    eval_samples = cfg.task.eval_questions * ev.n * (rounds + 1)
    f.update(think_samples=think_samples, resample_at_most=resampled, eval_samples=eval_samples)
    generated = (think_samples + resampled) * think.max_new_tokens + eval_samples * ev.max_new_tokens
    example = prompt + think.max_new_tokens
    trained = (self_size + human) * example * rounds * tr.epochs
    f.update(generated_tokens_at_most=generated, trained_tokens_at_most=trained)
    micro, accum = batch_shape(tr)
    f.update(
        global_batch=tr.global_batch_size,
        micro_batch=micro,
        accumulation=accum,
        steps_per_round=optimizer_steps(self_size + human, tr),
    )

    # Data: can the size be reached?
    if questions is None:
        w.append(f"train questions {where}: nothing checked about the data size")
    elif max(self_size, human) > questions * cfg.data.per_question:
        w.append(
            f"data size {self_size + human} exceeds the {questions} train questions "
            f"({cfg.data.per_question} example each): refused at launch"
        )
    elif generates and rule_of(cfg.pruning).needs_correct:
        rate = measured_solve_rate(cfg, runs)
        basis = "measured by an earlier run" if rate else "the paper's baseline Pass@k"
        rate = rate or paper_solve_rate(thinker, cfg.task.name)
        if rate is not None:
            expected = int(questions * rate[0]) * cfg.data.per_question
            f["expected_available"] = expected
            if expected < self_size:
                w.append(
                    f"data size {self_size} likely not reached: about {expected} questions of {questions} get a "
                    f"correct sample ({basis}: {100 * rate[0]:.1f}% at {rate[1]} samples)"
                    + (
                        f"; data.shortfall=resample draws up to {cfg.data.resample_batches} more batches"
                        if cfg.data.shortfall == "resample"
                        else ""
                    )
                )
    if tr.max_length is not None and tr.max_length < example:
        w.append(
            f"train.max_length={tr.max_length} < prompt (~{prompt}) + think.max_new_tokens ({think.max_new_tokens}): "
            "longer examples will be dropped (counted in train/result.json)"
        )

    # Disk and memory
    if shape is None:
        w.append(
            f"model {cfg.model.id}: shape unknown (not a preset, no local config.json): no memory, disk or "
            "GPU-hour estimate"
        )
        return out
    if teacher_id and teacher is None:
        w.append(
            f"teacher {teacher_id}: shape unknown (not a preset, no local config.json): no estimate of its "
            "memory or think cost"
        )
        return out
    disk = checkpoint_disk(shape, cfg)
    f.update(
        checkpoint_disk_gb_all=disk["all"],
        checkpoint_disk_gb_last=disk["last"],
        checkpoint_disk_gb=disk[tr.keep],
        disk_peak_gb=disk["peak"],
    )
    if tr.keep == "last" and disk["last"] == disk["all"] and rounds > 1:
        w.append(
            "train.keep=last frees no disk: the checkpoint cache holds every round's weights (hard links to "
            "the run's files); cache.trained=false (or cache=off) keeps only the last"
        )
    gpu_gb = cfg.cluster.gpu_memory_gb or assume["gpu_memory_gb"]
    on_gpu = gpus > 0
    engine = engine_fit(shape, cfg, prompt, assume, gpu_gb if on_gpu else None)
    think_engine = engine_fit(thinker, cfg, prompt, assume, gpu_gb if on_gpu else None)
    f.update(
        train_memory_gb=round(training_memory_gb(shape, cfg, example, micro, assume), 1),
        vllm_memory_gb=engine.memory_gb,
        vllm_sequences=engine.sequences,
        gpu_memory_gb=gpu_gb,
    )
    if teacher_id:
        f.update(teacher_vllm_memory_gb=think_engine.memory_gb, teacher_vllm_sequences=think_engine.sequences)
    if on_gpu and f["train_memory_gb"] > gpu_gb:
        out.misfits.append(
            f"training needs ~{f['train_memory_gb']} GB per GPU ({tr.strategy}, micro-batch {micro}, "
            f"checkpointing {'on' if tr.gradient_checkpointing else 'off'}) > {gpu_gb} GB"
        )
    tp, share = cfg.model.tensor_parallel_size, cfg.backend.gpu_memory_utilization
    for who, model_id, fit in [("the model", cfg.model.id, engine)] + (
        [("the teacher", teacher_id, think_engine)] if teacher_id else []
    ):
        if not on_gpu:
            continue
        if fit.sequences == 0:
            out.misfits.append(
                f"{who} {model_id} does not fit its engine: bf16 weights / TP {tp} and one sequence's KV cache "
                f"need ~{fit.memory_gb} GB per GPU > {share} x {gpu_gb} GB; give the cell more GPUs per node and "
                f"model.tensor_parallel_size >= {fit.tp_needed}"
            )
        elif fit.sequences < assume["vllm_sequences"] / 2:  # fewer, not far fewer: the column shows it
            w.append(
                f"vLLM for {who} fits {fit.sequences} sequences in flight, not {int(assume['vllm_sequences'])} "
                f"({fit.memory_gb} GB per GPU of {share} x {gpu_gb} GB; weights / TP {tp}): generation is "
                f"estimated that much slower"
            )

    w.extend(out.misfits)

    # GPU-hours: wall time x the GPUs the job holds (what SLURM bills). Training uses every GPU of every
    # node; an engine runs on `replicas` x TP GPUs of the first node (tpt.backends.replica_count).
    peak = assume["gpu_peak_tflops"] * 1e12
    train_s = 6 * shape.params * trained / (assume["train_mfu"] * peak)  # GPU-seconds
    think_prompts = (think_samples + resampled) / max(think.n, 1)  # each prefilled once for its n
    eval_prompts = eval_samples / max(ev.n, 1)
    think_tokens = (think_samples + resampled) * think.max_new_tokens + prompt * think_prompts
    eval_tokens = eval_samples * ev.max_new_tokens + prompt * eval_prompts
    think_s = 2 * thinker.params * think_tokens / (assume["generate_utilization"] * think_engine.speed * peak)
    eval_s = 2 * shape.params * eval_tokens / (assume["generate_utilization"] * engine.speed * peak)
    held = max(gpus * nodes, 1)
    replicas = cfg.backend.replicas or max(gpus // tp, 1)
    engine_gpus = max(min(replicas * tp, gpus), 1)
    verify_cpu_s = verification_cpu_s(cfg, think_samples + resampled + eval_samples, assume)
    if verify_cpu_s is not None:
        f["verify_cpu_hours"] = round(verify_cpu_s / 3600, 1)
    # the cell's CPUs judge the programs after generation, while its GPUs wait (held, so billed)
    verify_wall_s = (verify_cpu_s or 0.0) / max(cfg.cluster.cpus, 1)
    wall_s = train_s / held + (think_s + eval_s) / engine_gpus + verify_wall_s
    f["wall_hours"] = round(wall_s / 3600, 2) if on_gpu else None
    f["gpu_hours"] = round(wall_s * held / 3600, 2) if on_gpu else 0.0
    f["gpu_hours_used"] = round((train_s + think_s + eval_s) / 3600, 2) if on_gpu else 0.0
    if on_gpu and wall_s / 3600 > cfg.cluster.timeout_min / 60 * (cfg.cluster.max_requeues + 1):
        w.append(
            f"~{wall_s / 3600:.1f} h of wall time exceeds cluster.timeout_min x "
            f"(max_requeues + 1): the job would run out of requeues"
        )
    per_round_verify_h = verify_wall_s / 3600 / max(rounds, 1)
    if verify_cpu_s and per_round_verify_h > cfg.cluster.timeout_min / 60:
        w.append(
            f"judging a round's programs takes up to ~{per_round_verify_h:.1f} h on the cell's {cfg.cluster.cpus} "
            f"CPUs (~{f['verify_cpu_hours']:,.0f} CPU-h in all), more than its {cfg.cluster.timeout_min} min SLURM "
            "limit: more model.cpus, task.code.max_tests, or a smaller task.code.program_budget_s"
        )
    return out


def checkpoint_disk(shape: Shape, cfg: DictConfig) -> Dict[str, float]:
    """GB of checkpoints a cell leaves with train.keep=all and =last, and its peak while saving the last
    round. Saved in the base model's dtype, after a transient fp32 save (training keeps fp32 master
    weights; tpt.models.cast_checkpoint rewrites them). With the checkpoint cache (cache.trained), every
    round's weights stay in it: as hard links to the run's files (no more disk than keep=all) or, with
    cache.copy_checkpoints, as copies beside them. A cache on another filesystem without copies stores
    nothing: that case is keep's own figure."""
    checkpoint = shape.params * shape.dtype_bytes
    rounds = cfg.rounds
    cached = cfg.cache.enabled and cfg.cache.trained
    copied = cached and cfg.cache.copy_checkpoints
    linked = cached and not copied  # the run's old rounds stay alive through the cache's links
    run = {"all": rounds, "last": rounds if linked else min(rounds, 1)}
    copies = rounds if copied else 0
    out = {keep: round(gb(checkpoint * (n + copies)), 1) for keep, n in run.items()}
    # the last round's save: what the earlier rounds left (keep=last deletes them once the new one exists,
    # so the one before is still there) and the new weights in fp32
    before = rounds - 1 if cfg.train.keep == "all" or linked else min(rounds - 1, 1)
    before += rounds - 1 if copied else 0
    out["peak"] = round(gb(checkpoint * before + shape.params * 4), 1)
    return out


def verification_cpu_s(cfg: DictConfig, programs: int, assume: Dict[str, float]) -> Optional[float]:
    """CPU-seconds to judge a code cell's programs, at most: each runs on every test of its problem (a
    correct one must pass them all; a wrong one goes on until a test passes, for the soft verdict, and most
    pass none), up to task.code.program_budget_s, at the sandbox's measured cost per run. None for math
    tasks, whose judging is string work. Verdicts the cache already holds are not subtracted."""
    if TASKS[cfg.task.name].kind != "code":
        return None
    code = cfg.task.code
    tests = assume.get(f"tests_per_problem.{cfg.task.name}") or 0
    if code.max_tests:
        tests = min(tests, code.max_tests)
    per_program = min(tests * assume["sandbox_run_s"], code.program_budget_s)
    return programs * per_program


def kv_bytes_per_token(shape: Shape, dtype_bytes: int) -> float:
    """vLLM's KV cache for one token: K and V of every layer's KV heads (tests/test_vllm_backend.py
    checks it against the blocks vLLM itself allocates: Llama to the block, Gemma-2 6% over what vLLM
    counts for its alternating sliding-window layers; docs/benchmarks.md "Engine memory")."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * dtype_bytes


@dataclass(frozen=True)
class EngineFit:
    """A vLLM engine of a model on the cell's GPUs: memory per GPU, the sequences that fit in flight
    (up to the assumed `vllm_sequences`; 0: not even one), its throughput as a share of the assumed
    one, and the tensor parallelism that would fit one sequence."""

    memory_gb: float
    sequences: int
    speed: float
    tp_needed: int


def engine_fit(
    shape: Shape, cfg: DictConfig, prompt: int, assume: Dict[str, float], gpu_gb: Optional[float]
) -> EngineFit:
    """Per GPU: bf16 weights over the tensor-parallel ranks, and the KV cache of as many sequences of
    prompt + max_new_tokens (2 x layers x kv_heads x head_dim x 2 bytes a token) as fit in vLLM's share
    of `gpu_gb` beside them, up to `vllm_sequences` (all of them when `gpu_gb` is None: a CPU run).
    Decoding is bound by memory bandwidth, so its throughput is taken as proportional to the
    sequences in flight below the assumed batch (an assumption, like the batch's own throughput)."""
    tp, wanted = cfg.model.tensor_parallel_size, int(assume["vllm_sequences"])
    seq = prompt + max(cfg.think.max_new_tokens, cfg.eval.max_new_tokens)
    kv_per_sequence = kv_bytes_per_token(shape, 2) * seq / tp
    weights, overhead = 2 * shape.params / tp, assume["overhead_gb"] * 1e9
    sequences = wanted
    if gpu_gb is not None:
        room = cfg.backend.gpu_memory_utilization * gpu_gb * 1e9 - weights - overhead
        sequences = max(0, min(wanted, int(room // kv_per_sequence)))
    needed = tp
    if gpu_gb is not None:
        per_gpu = cfg.backend.gpu_memory_utilization * gpu_gb * 1e9 - overhead
        while needed < 64 and 2 * shape.params / needed + kv_per_sequence * tp / needed > per_gpu:
            needed *= 2
    shown = max(sequences, 1)
    return EngineFit(
        memory_gb=round(gb(weights + kv_per_sequence * shown + overhead), 1),
        sequences=sequences,
        speed=max(sequences, 1) / wanted,
        tp_needed=needed,
    )


# Bytes one token keeps for the backward pass, a layer (hidden, intermediate, heads x seq) or once
# (vocab: the logits, their fp32 copies and gradients), fitted to the peak of a training step measured
# on a CPU in fp32 with eager attention: benchmarks/train_memory.py, whose file
# benchmarks/results/train_memory.json holds the measurements and these fits (tests/test_plan.py checks
# that they agree), and docs/benchmarks.md "Training memory" the residuals. Llama's and Gemma-2's MLPs
# and norms differ, so each has its own; a model of another family takes Llama's.
ACTIVATION_BYTES = {
    "llama": {"hidden": 92.33, "intermediate": 13.88, "heads x seq": 2.51, "vocab": 12.06},
    "gemma2": {"hidden": 42.20, "intermediate": 13.84, "heads x seq": 20.72, "vocab": 15.37},
}


def training_memory_gb(shape: Shape, cfg: DictConfig, seq: int, micro: int, assume: Dict[str, float]) -> float:
    """Per GPU: weights, gradients and optimizer states as the training strategy holds them
    (tpt.training.strategies: `state_bytes`, autocast's bf16 copies included); one micro-batch's activations and
    logits at the measured fp32 bytes (`activation_terms`) times `activation_scale` (1: bf16 autocast
    keeps some of them in half the bytes, by an amount not measured without a GPU, so this is a bound);
    and a fixed overhead."""
    tr = cfg.train
    # on a GPU only Gemma-2 trains with eager attention (tpt.models.attention_for; flash-attn is not
    # in the gpu extra); the others take SDPA, which keeps no score matrix
    terms = activation_terms(shape, seq, micro, tr.gradient_checkpointing, eager=shape.family == "gemma2")
    activations = assume["activation_scale"] * sum(terms.values())
    return gb(strategy_of(tr).state_bytes(shape, tr) + activations) + assume["overhead_gb"]


def activation_terms(shape: Shape, seq: int, micro: int, checkpointing: bool, eager: bool) -> Dict[str, float]:
    """Bytes of one micro-batch's activations at fp32 (ACTIVATION_BYTES), by term. With gradient
    checkpointing a layer keeps only its fp32 input, and one layer at a time recomputes the rest."""
    fit = ACTIVATION_BYTES.get(shape.family, ACTIVATION_BYTES["llama"])
    tokens = seq * micro
    per_layer = tokens * (
        fit["hidden"] * shape.hidden
        + fit["intermediate"] * shape.mlp
        + (fit["heads x seq"] * shape.query_heads * seq if eager else 0.0)
    )
    layers = 4 * tokens * shape.hidden * shape.layers + per_layer if checkpointing else per_layer * shape.layers
    return {"layers": layers, "logits": fit["vocab"] * tokens * shape.vocab}


def cpu_training_memory_terms(row: Dict[str, float]) -> Dict[str, float]:
    """The plan's terms for a shape that benchmarks/train_memory.py trained on a CPU (fp32, eager
    attention, one process, no checkpointing, no autocast, no CUDA overhead)."""
    shape = Shape(
        row["params"],
        row["hidden"],
        row["layers"],
        row["vocab"],
        row["kv_heads"],
        row["head_dim"],
        4,
        heads=row["heads"],
        intermediate=row["intermediate"],
        family=row["arch"],
    )
    return {"states": 16.0 * row["params"], **activation_terms(shape, row["seq"], row["micro"], False, eager=True)}


# ---- the sweep ------------------------------------------------------------------------------------


def plan(
    overrides: Sequence[str], assume: Optional[Dict[str, float]] = None, runs: Optional[Path] = Path("outputs")
) -> List[CellPlan]:
    assume = {**ASSUMPTIONS, **(assume or {})}
    plans = [plan_cell(cell, assume, runs) for cell in sweep(overrides)]
    batches = {p.figures.get("global_batch") for p in plans if "global_batch" in p.figures}
    if len(batches) > 1:
        for p in plans:
            p.warnings.append(
                f"the cells of this sweep train with different global batches {sorted(batches)}: "
                "their optimisation differs"
            )
    return plans


COLUMNS = [
    ("model", "model"),
    ("gpus", "GPUs"),
    ("nodes", "nodes"),
    ("hours", "SLURM h"),
    ("train_questions", "train q"),
    ("data_size", "size"),
    ("expected_available", "expect"),
    ("think_samples", "think samples"),
    ("eval_samples", "eval samples"),
    ("generated_tokens_at_most", "gen tok ≤"),
    ("trained_tokens_at_most", "train tok ≤"),
    ("global_batch", "batch"),
    ("steps_per_round", "steps/round"),
    ("checkpoint_disk_gb", "disk GB"),
    ("disk_peak_gb", "disk peak GB"),
    ("train_memory_gb", "train GB/GPU"),
    ("vllm_memory_gb", "vLLM GB/GPU"),
    ("vllm_sequences", "seqs"),
    ("teacher", "teacher"),
    ("teacher_vllm_memory_gb", "teacher GB/GPU"),
    ("verify_cpu_hours", "verify CPU-h ≤"),
    ("wall_hours", "wall h"),
    ("gpu_hours", "GPU-h"),
]


def _cell_name(overrides: List[str]) -> str:
    return " ".join(o for o in overrides if not o.startswith("+experiment=")) or "(defaults)"


def _fmt(value) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1e6 else f"{value:.2e}"
    if isinstance(value, int) and value >= 1e6:
        return f"{value:.2e}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def to_markdown(plans: List[CellPlan], assume: Dict[str, float]) -> str:
    lines = ["| cell | " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for p in plans:
        # "-": a figure that does not apply to this cell (no teacher); "?": one that is unknown
        cols = [_fmt(p.figures[k]) if k in p.figures else "-" for k, _ in COLUMNS]
        lines.append(f"| {_cell_name(p.overrides)} | " + " | ".join(cols) + " |")
    warned = [p for p in plans if p.warnings]
    if warned:
        lines += ["", "Warnings:"]
        for p in warned:
            lines += [f"- {_cell_name(p.overrides)}: {w}" for w in p.warnings]
    total = lambda key: sum(p.figures.get(key) or 0 for p in plans)  # noqa: E731
    lines += [
        "",
        f"Sweep: {len(plans)} cell(s), ~{total('gpu_hours'):,.1f} GPU-hours, checkpoints "
        f"~{total('checkpoint_disk_gb'):,.0f} GB (train.keep=all: ~{total('checkpoint_disk_gb_all'):,.0f} GB, "
        f"last: ~{total('checkpoint_disk_gb_last'):,.0f} GB), at most {total('generated_tokens_at_most'):.2e} tokens "
        f"generated and {total('trained_tokens_at_most'):.2e} trained.",
    ]
    lines += [
        "",
        "Assumptions (--assume name=value): "
        + ", ".join(f"{k}={v:g}" for k, v in assume.items() if not k.startswith("prompt_tokens.")),
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tpt.plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="as for launch.py (comma sweeps, +experiment=tableN)")
    parser.add_argument(
        "--assume",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a throughput or memory assumption ({', '.join(ASSUMPTIONS)})",
    )
    parser.add_argument("--gpu", choices=sorted(GPU_MEMORY_GB), help="the GPU the cells get (sets gpu_memory_gb)")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("outputs"),
        help="finished runs whose measured solve rates sharpen the data-size warnings",
    )
    argv = [
        a for a in (sys.argv[1:] if argv is None else argv) if a not in ("-m", "--multirun")
    ]  # as launch.py takes them
    args = parser.parse_args(argv)
    assume: Dict[str, float] = {}
    for item in args.assume:
        name, _, value = item.partition("=")
        if name not in ASSUMPTIONS:
            parser.error(f"unknown assumption {name!r}; known: {', '.join(ASSUMPTIONS)}")
        try:
            assume[name] = float(value)
        except ValueError:
            parser.error(f"--assume {item}: {name} takes a number, as in --assume {name}={ASSUMPTIONS[name]:g}")
    if args.gpu:
        assume["gpu_memory_gb"] = GPU_MEMORY_GB[args.gpu]
    try:
        check_overrides(args.overrides)
        plans = plan(args.overrides, assume, args.runs)
    except (HydraException, OmegaConfBaseException) as e:  # what composing refused, on one line
        print(f"tpt: error: {first_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
    except ConfigError as e:
        print(f"tpt: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(to_markdown(plans, {**ASSUMPTIONS, **assume}))


if __name__ == "__main__":
    main()
