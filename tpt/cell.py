"""What the stages of one experiment cell share: its config, run directory, task data, data source,
prompt, verifier, models and the caches. Built once per cell; the stages only read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from tpt import models
from tpt.backends.cache import GenerationCache
from tpt.cache import CheckpointCache, KeyedStore
from tpt.lineage import Lineage, base_model
from tpt.models import ModelRef
from tpt.prompt import PromptBuilder
from tpt.rundir import RunDir
from tpt.sources import Source, source_of
from tpt.tasks import TaskData, task_kind
from tpt.verify import make_verifier


@dataclass(frozen=True)
class Prepared:
    """A cell checked and ready: the config it runs (the composed one with what preflight decided,
    read-only), what was decided, the task data, and the base model's and the teacher's paths."""

    cfg: DictConfig
    decided: Dict[str, object]  # dotted key -> the value preflight chose for it (preflight.json)
    data: TaskData
    base: str
    teacher: Optional[str]
    sandbox: Optional[Dict[str, object]] = None  # code tasks: the isolation programs get (task.code.isolation)


@dataclass(eq=False)
class Cell:
    cfg: DictConfig
    rundir: RunDir
    data: TaskData
    kind: str  # the task's: math | code
    source: Source  # who writes the training data
    prompt: PromptBuilder
    verifier: Any
    models: Lineage  # M_i
    teacher: Optional[ModelRef]  # a source with a teacher (distill)
    cache: Optional[GenerationCache]
    checkpoints: Optional[CheckpointCache]
    progress: Callable[[str, dict], None] = lambda desc, figures: None  # live progress of a stage (W&B)
    _memo: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, ready: Prepared, rundir: RunDir) -> "Cell":
        """The cell of a prepared config (tpt.preflight.prepare) in its run directory."""
        cfg, data, base_path, teacher_path = ready.cfg, ready.data, ready.base, ready.teacher
        kind = task_kind(cfg.task.name)
        source = source_of(cfg)
        base = base_model(cfg.model.id, base_path, cfg.model.revision)
        teacher_id, teacher_revision = source.teacher_id(cfg)
        teacher = base_model(teacher_id, teacher_path, teacher_revision) if teacher_path else None
        prompt = PromptBuilder(cfg.task, data.few_shot, cfg.model.system_role)
        root = Path(cfg.cache.dir) if cfg.cache.dir else models.cache_dir()
        on = cfg.cache.enabled
        wait = cfg.cache.lock_wait_s
        verdicts = KeyedStore(root / "verdicts", "verdicts", wait) if on and cfg.cache.verdicts else None
        return cls(
            cfg,
            rundir,
            data,
            kind,
            source,
            prompt,
            make_verifier(kind, cfg.task, verdicts),
            Lineage(rundir, base, OmegaConf.to_container(cfg.train, resolve=True), prompt),
            teacher,
            GenerationCache(root / "generations", wait) if on else None,
            CheckpointCache(root / "trained", cfg.cache.copy_checkpoints) if on and cfg.cache.trained else None,
        )

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per cell (e.g. the human solutions, verified once and used every round)."""
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]
