"""The paper's Algorithm 1 for one experiment cell:

    round 0: eval(M_0)
    round i: think(M_{i-1}) -> prune -> train(M_{i-1} -> M_i) -> eval(M_i)     for i = 1..rounds

Each stage runs through `RunDir.run_stage`, so a rerun skips finished stages and resumes where an
interrupted run stopped. Everything that can be checked without compute is checked first.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from omegaconf import DictConfig

from tpt import miniature, models
from tpt.backends import BackendUnavailable, check_backend, release_all, resolve_backend
from tpt.cell import Cell
from tpt.config import ConfigError, validate
from tpt.io import write_text_atomic
from tpt.rundir import RunDir, RunDirBusy
from tpt.stages import eval as eval_stage, prune, think, train
from tpt.summary import format_summary, round_row
from tpt.tasks import DataError, TaskData, load_task
from tpt.tracking import Tracker

log = logging.getLogger(__name__)

# Errors caused by the user's input (config, data files, model ids), reported without a traceback.
USER_ERRORS = (ConfigError, DataError, models.ModelError, RunDirBusy, BackendUnavailable)


def prepare(cfg: DictConfig) -> Tuple[TaskData, str, Optional[str]]:
    """Check the config, the backend, the task's data and the models, before any compute: the task
    data, and the base model's and the teacher's paths."""
    if cfg.miniature:
        miniature.apply(cfg)  # pinned as the miniature that really runs
    cfg.backend.name = resolve_backend(cfg.backend.name)  # pinned as the backend that really runs
    validate(cfg)
    check_backend(cfg.backend.name)
    data = load_task(cfg.task)
    base = models.check_loadable(cfg.model.id, cfg.model.revision)
    teacher = None
    if cfg.source.kind == "distill":
        teacher = models.check_loadable(cfg.source.teacher, cfg.source.teacher_revision)
    return data, base, teacher


def run(cfg: DictConfig, run_dir: Path) -> List[Dict]:
    """Run (or resume) one cell; returns one metrics row per round."""
    data, base, teacher = prepare(cfg)
    with RunDir(run_dir).claimed(cfg) as run_dir:
        cell = Cell.open(cfg, run_dir, data, base, teacher)
        log.info("cell %s: model %s, task %s (%d train / %d eval questions, %d-shot), %d round(s)",
                 run_dir.path, cfg.model.name, cfg.task.name, len(data.train), len(data.eval),
                 len(data.few_shot), cfg.rounds)
        return run_rounds(cell)


def run_rounds(cell: Cell) -> List[Dict]:
    run, cfg = cell.run, cell.cfg

    def stage(i: int, name: str, body) -> None:
        run.run_stage(i, name, lambda out: body(cell, i, out))

    tracker = Tracker(cfg, run.path)
    cell.progress = tracker.progress
    try:
        stage(0, "eval", eval_stage.run)
        tracker.log_round(round_row(run, 0), run.stage(0, "eval") / "samples.jsonl")
        for i in range(1, cfg.rounds + 1):
            stage(i, "think", think.run)
            stage(i, "prune", prune.run)
            stage(i, "train", train.run)
            stage(i, "eval", eval_stage.run)
            tracker.log_round(round_row(run, i), run.stage(i, "eval") / "samples.jsonl")
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    finally:
        release_all()
    tracker.finish()
    summary = format_summary(tracker.rows, cfg.eval.k)
    write_text_atomic(run.path / "summary.md", summary + "\n")
    print(f"\n{cfg.model.name} on {cfg.task.name}, pruning={cfg.pruning.strategy} ({run.path})\n{summary}\n",
          flush=True)
    return tracker.rows
