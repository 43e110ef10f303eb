"""Every check a cell's config must pass before any compute: keys left unset, keys outside the schema,
and values that are well-typed but impossible, each refused with a ConfigError naming the key."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import List

from omegaconf import DictConfig, OmegaConf

from tpt.backends import AUTO, BACKENDS
from tpt.config import Config, ConfigError
from tpt.contamination import RULES as CONTAMINATION_RULES
from tpt.pruning import RULES as PRUNING_RULES
from tpt.sources import SOURCES, SourceError
from tpt.tasks import CODE_TEST_SETS, TASKS
from tpt.training import STRATEGIES, world_size
from tpt.verify.math import RULES, STRICT

LOGGERS = ("none", "wandb")
CLUSTERS = ("local", "slurm")


def need(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config: {key} {why}")


def one_of(value, known, key: str) -> None:
    need(value in known, key, f"must be one of {tuple(known)} (got {value!r})")


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

    def walk(node: DictConfig, schema_type, prefix: str) -> None:
        known = {f.name for f in dataclasses.fields(schema_type)}
        for key in node.keys():
            if not prefix and key == "hydra":  # Hydra's own node, present when composed with it
                continue
            if key not in known:
                path = f"{prefix}{key}"
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys here: {', '.join(known)}"
                raise ConfigError(f"invalid config: {path} is not a config key (nothing reads it){hint}")
            child_type = OmegaConf.get_type(node, key)
            if child_type is not None and dataclasses.is_dataclass(child_type):
                walk(node[key], child_type, f"{prefix}{key}.")

    walk(cfg, Config, "")


def validate(cfg: DictConfig) -> None:
    """Reject impossible values and unknown keys before any compute, naming the key."""
    missing = [k for k in missing_keys(cfg) if not k.startswith("hydra.")]  # Hydra fills its own at run time
    need(not missing, ", ".join(missing), "must be given (e.g. on the command line): it has no value here")
    check_known_keys(cfg)
    need(cfg.rounds >= 1, "rounds", f"must be >= 1 (got {cfg.rounds})")
    need(cfg.data.size >= 1, "data.size", f"must be a positive number of examples (got {cfg.data.size})")
    need(cfg.data.scale > 0, "data.scale", f"must be > 0 (got {cfg.data.scale})")
    one_of(cfg.data.shortfall, ("resample", "warn", "fail"), "data.shortfall")
    need(cfg.data.resample_batches >= 0, "data.resample_batches", f"must be >= 0 (got {cfg.data.resample_batches})")
    need(cfg.data.per_question >= 1, "data.per_question", f"must be >= 1 (got {cfg.data.per_question})")
    _task(cfg)
    _source(cfg)
    _backend(cfg)
    one_of(cfg.logger.backend, LOGGERS, "logger.backend")
    _cluster(cfg.cluster)
    for stage in ("think", "eval"):
        _sampling(getattr(cfg, stage), stage)
    ks = list(cfg.eval.k)
    need(len(ks) >= 1, "eval.k", "must list at least one k")
    need(all(1 <= k <= cfg.eval.n for k in ks), "eval.k", f"values must lie in 1..eval.n={cfg.eval.n} (got {ks})")
    _train(cfg.train)


def _task(cfg: DictConfig) -> None:
    task = cfg.task
    one_of(task.name, TASKS, "task.name")
    spec = TASKS[task.name]
    settings = OmegaConf.get_type(cfg, "task")
    need(
        settings is spec.settings,
        "task.name",
        f"{task.name!r} needs its own settings ({spec.settings.__name__}), "
        f"not {getattr(settings, '__name__', settings)}: choose the task with task={task.name}",
    )
    one_of(cfg.pruning.strategy, PRUNING_RULES, "pruning.strategy")
    PRUNING_RULES[cfg.pruning.strategy](cfg.pruning).check(spec.kind)
    need(task.eval_questions >= 1, "task.eval_questions", f"must be >= 1 (got {task.eval_questions})")
    need(task.few_shot >= 0, "task.few_shot", f"must be >= 0 (got {task.few_shot})")
    one_of(task.contamination, CONTAMINATION_RULES, "task.contamination")
    generated = [t.name for t in TASKS.values() if t.bundled]
    need(
        task.seed is None or spec.bundled,
        "task.seed",
        f"sets the problems of a generated task ({', '.join(generated)}, or a miniature's); task {task.name} reads "
        f"its problems from data (got {task.seed})",
    )
    tq = task.train_questions
    need(tq is None or tq >= 1, "task.train_questions", f"must be >= 1 or null (got {tq})")
    if spec.kind == "math":
        one_of(task.strict_match, STRICT, "task.strict_match")
        one_of(task.answer, RULES, "task.answer")
    if spec.kind == "code":
        _code(task.code)
    spec.check(task)  # the task's own settings


def _code(code: DictConfig) -> None:
    one_of(code.isolation, ("required", "none"), "task.code.isolation")
    need(
        len(code.tests) >= 1 and set(code.tests) <= set(CODE_TEST_SETS),
        "task.code.tests",
        f"must list some of {CODE_TEST_SETS} (got {list(code.tests)})",
    )
    need(
        code.max_tests is None or code.max_tests >= 1,
        "task.code.max_tests",
        f"must be >= 1 or null (got {code.max_tests})",
    )
    need(
        code.default_time_limit_s > 0 and code.time_limit_scale > 0,
        "task.code",
        "default_time_limit_s and time_limit_scale must be > 0",
    )
    need(code.program_budget_s > 0, "task.code.program_budget_s", f"must be > 0 (got {code.program_budget_s})")
    need(code.default_memory_mb >= 16, "task.code.default_memory_mb", f"must be >= 16 (got {code.default_memory_mb})")
    need(
        code.max_output_mb >= 1 and code.max_processes >= 1, "task.code", "max_output_mb and max_processes must be >= 1"
    )
    need(code.workers is None or code.workers >= 1, "task.code.workers", f"must be >= 1 or null (got {code.workers})")
    need(
        code.python is None or Path(code.python).is_file(),
        "task.code.python",
        f"must be an existing interpreter (got {code.python!r})",
    )


def _source(cfg: DictConfig) -> None:
    one_of(cfg.source.kind, SOURCES, "source.kind")
    try:
        SOURCES[cfg.source.kind].check(cfg)
    except SourceError as e:
        raise ConfigError(f"invalid config: {e}") from None


def _backend(cfg: DictConfig) -> None:
    b = cfg.backend
    one_of(b.name, (*BACKENDS, AUTO), "backend.name")
    need(
        0 < b.gpu_memory_utilization <= 1,
        "backend.gpu_memory_utilization",
        f"must be in (0, 1] (got {b.gpu_memory_utilization})",
    )
    need(
        b.kv_cache_gb is None or b.kv_cache_gb > 0, "backend.kv_cache_gb", f"must be > 0 or null (got {b.kv_cache_gb})"
    )
    r = b.replicas
    sharded = b.name in BACKENDS and BACKENDS[b.name].sharded
    need(r is None or r >= 1, "backend.replicas", f"must be >= 1 or null (got {r})")
    need(
        r in (None, 1) or b.name == AUTO or sharded,
        "backend.replicas",
        f"> 1 needs an engine that runs in processes of its own, as vllm (got backend={b.name})",
    )
    tp = cfg.model.tensor_parallel_size
    need(tp >= 1, "model.tensor_parallel_size", f"must be >= 1 (got {tp})")
    gpus = cfg.cluster.gpus
    # A SLURM cell with GPUs must have as many as it shards over; one without runs vLLM's CPU build, unsharded
    need(
        not (sharded and cfg.cluster.backend == "slurm") or (tp <= gpus if gpus > 0 else tp == 1),
        "model.tensor_parallel_size",
        f"= {tp} needs at least as many GPUs per cell (cluster.gpus = {gpus})"
        if gpus > 0
        else f"= {tp} needs GPUs (cluster.gpus = 0: vLLM's CPU build runs one engine, tensor_parallel_size=1)",
    )


def _cluster(c: DictConfig) -> None:
    one_of(c.backend, CLUSTERS, "cluster.backend")
    for key in ("cpus", "mem_gb", "timeout_min", "array_parallelism"):
        need(getattr(c, key) >= 1, f"cluster.{key}", f"must be >= 1 (got {getattr(c, key)})")
    need(c.nodes >= 1, "cluster.nodes", f"must be >= 1 (got {c.nodes})")
    need(
        c.gpus >= 0 and c.max_requeues >= 0,
        "cluster",
        f"gpus and max_requeues must be >= 0 (got {c.gpus}, {c.max_requeues})",
    )


def _sampling(s: DictConfig, stage: str) -> None:
    need(s.n >= 1, f"{stage}.n", f"must be >= 1 (got {s.n})")
    need(s.temperature >= 0, f"{stage}.temperature", f"must be >= 0 (got {s.temperature})")
    need(0 < s.top_p <= 1, f"{stage}.top_p", f"must be in (0, 1] (got {s.top_p})")
    need(s.max_new_tokens >= 1, f"{stage}.max_new_tokens", f"must be >= 1 (got {s.max_new_tokens})")
    need(s.batch_size >= 1, f"{stage}.batch_size", f"must be >= 1 (got {s.batch_size})")
    need(s.chunk_size >= 1, f"{stage}.chunk_size", f"must be >= 1 (got {s.chunk_size})")
    need(s.array_tasks >= 0, f"{stage}.array_tasks", f"must be >= 0 (got {s.array_tasks})")


def _train(t: DictConfig) -> None:
    need(t.lr > 0, "train.lr", f"must be > 0 (got {t.lr})")
    need(t.epochs > 0, "train.epochs", f"must be > 0 (got {t.epochs})")
    need(t.batch_size >= 1, "train.batch_size", f"must be >= 1 (got {t.batch_size})")
    one_of(t.strategy, STRATEGIES, "train.strategy")
    STRATEGIES[t.strategy].check(t)
    world = world_size(t)
    need(
        t.global_batch_size >= world and t.global_batch_size % world == 0,
        "train.global_batch_size",
        f"must be a multiple of the {world} training processes (train.processes_per_node x train.nodes) "
        f"(got {t.global_batch_size})",
    )
    one_of(t.keep, ("all", "last"), "train.keep")
    need(t.max_length is None or t.max_length >= 16, "train.max_length", f"must be >= 16 or null (got {t.max_length})")
    need(0 <= t.warmup_ratio < 1, "train.warmup_ratio", f"must be in [0, 1) (got {t.warmup_ratio})")
