"""The paper's Algorithm 1 for one experiment cell:

    round 0: eval(M_0)
    round i: think(M_{i-1}) -> prune -> train(M_{i-1} -> M_i) -> eval(M_i)     for i = 1..rounds

Each stage runs through `RunDir.run_stage`, so a rerun skips finished stages and resumes where an
interrupted run stopped. Everything that can be checked without compute is checked first
(tpt.preflight).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Tuple

from omegaconf import DictConfig

from tpt.backends import release_all
from tpt.cell import Cell
from tpt.io import write_json, write_text_atomic
from tpt.logs import SCREEN, log_file
from tpt.preflight import prepare
from tpt.rundir import RunDir
from tpt.stages import eval as eval_stage
from tpt.stages import prune, think, train
from tpt.summary import format_cost, format_summary, round_row
from tpt.tracking import Tracker

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, out_dir: Path) -> List[Dict]:
    """Run (or resume) one cell in `out_dir`; returns one metrics row per round."""
    ready = prepare(cfg)
    cfg, data = ready.cfg, ready.data
    with RunDir(out_dir, devices_of(cfg)).claimed(cfg) as rundir:
        write_json(rundir.path / "contamination.json", data.contamination)
        write_json(rundir.path / "preflight.json", {"decided": ready.decided, "sandbox": ready.sandbox})
        cell = Cell.open(ready, rundir)
        log.info(
            "cell %s: model %s, task %s (%d train / %d eval questions, %d-shot), %d round(s)%s",
            rundir.path,
            cfg.model.name,
            cfg.task.name,
            len(data.train),
            len(data.eval),
            len(data.few_shot),
            cfg.rounds,
            f"; full log: {log_file()}" if log_file() else "",
            extra=SCREEN,
        )
        return run_rounds(cell)


def say_round(row: Dict, ks) -> None:
    """One screen line per round as it ends: Pass@1 and Pass@k with their standard errors."""
    k = max(ks)
    log.info(
        "round %d: Pass@1 %.3f ± %.3f, Pass@%d %.3f ± %.3f",
        row["round"],
        row["pass@1"],
        row.get("pass@1_se", 0.0),
        k,
        row[f"pass@{k}"],
        row.get(f"pass@{k}_se", 0.0),
        extra=SCREEN,
    )


def devices_of(cfg: DictConfig) -> Tuple[str, int]:
    """What the cell's device-seconds count: its GPUs (cluster.gpus x cluster.nodes) where it has them,
    else the CPU cores this process may use."""
    import torch

    if torch.cuda.is_available() and cfg.cluster.gpus > 0:
        return "gpu", cfg.cluster.gpus * cfg.cluster.nodes
    return "cpu", len(os.sched_getaffinity(0))


def run_rounds(cell: Cell) -> List[Dict]:
    rundir, cfg = cell.rundir, cell.cfg

    def stage(i: int, name: str, body) -> None:
        rundir.run_stage(i, name, lambda out: body(cell, i, out))

    tracker = Tracker(cfg, rundir.path)
    cell.progress = tracker.progress
    try:
        stage(0, "eval", eval_stage.run)
        tracker.log_round(round_row(rundir, 0), rundir.stage(0, "eval") / "samples.jsonl")
        say_round(tracker.rows[-1], cfg.eval.k)
        for i in range(1, cfg.rounds + 1):
            stage(i, "think", think.run)
            stage(i, "prune", prune.run)
            stage(i, "train", train.run)
            if cfg.train.keep == "last":
                cell.models.drop_superseded(i)
            stage(i, "eval", eval_stage.run)
            tracker.log_round(round_row(rundir, i), rundir.stage(i, "eval") / "samples.jsonl")
            say_round(tracker.rows[-1], cfg.eval.k)
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    finally:
        release_all()
    tracker.finish()
    summary = format_summary(tracker.rows, cfg.eval.k)
    if cell.kind == "code" and cfg.task.code.isolation == "none":
        summary += "\n\nPrograms under test ran WITHOUT the sandbox's isolation (task.code.isolation=none)."
    cost = format_cost(tracker.rows)
    write_text_atomic(rundir.path / "summary.md", summary + "\n" + (f"\nWhat it cost:\n\n{cost}\n" if cost else ""))
    print(
        f"\n{cfg.model.name} on {cfg.task.name}, pruning={cfg.pruning.strategy} ({rundir.path})\n{summary}\n"
        + (f"\nWhat it cost (python -m tpt.report {rundir.path.parent} --cost):\n{cost}\n" if cost else ""),
        flush=True,
    )
    return tracker.rows
