"""Tracking: a local metrics.jsonl that is always written, plus W&B when `logger=wandb` (one run per
cell, grouped by experiment, step = round; offline without an API key; the run id comes from the
run directory, so a resumed or requeued cell continues its own run)."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

from omegaconf import OmegaConf

from tpt.io import write_jsonl
from tpt.logs import SCREEN

log = logging.getLogger(__name__)

SAMPLE_TABLE_ROWS = 32  # eval samples per round shown in W&B
SAMPLE_COLUMNS = ["round", "qid", "sample", "question", "completion", "pred", "answer", "correct"]


class Tracker:
    def __init__(self, cfg, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.rows: List[Dict] = []
        self.wandb_run = None
        if cfg.logger.backend == "wandb":
            self.wandb_run = _start_wandb(cfg, self.run_dir)

    def log_round(self, row: Dict, samples: Optional[Path] = None) -> None:
        """Record one round's metrics (metrics.jsonl is rewritten whole, atomically); W&B also gets a
        table of the first eval samples from the `samples` jsonl file."""
        self.rows = [r for r in self.rows if r["round"] != row["round"]] + [row]
        self.rows.sort(key=lambda r: r["round"])
        write_jsonl(self.run_dir / "metrics.jsonl", self.rows)
        if self.wandb_run is not None:
            import wandb

            logged = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            logged.update({f"pass_curve/pass@{k}": v for k, v in enumerate(row.get("pass_curve", []), 1)})
            if samples is not None:
                logged["samples"] = wandb.Table(columns=SAMPLE_COLUMNS, data=sample_table(samples, row["round"]))
            self.wandb_run.log(logged, step=row["round"])

    def progress(self, stage: str, figures: Dict) -> None:
        """A stage's progress as it runs (chunks done, tokens/s, seconds left): W&B's run summary."""
        if self.wandb_run is not None:
            self.wandb_run.summary.update({f"progress/{stage}/{k}": v for k, v in figures.items()})

    def finish(self, exit_code: int = 0) -> None:
        """Close the W&B run (exit_code 1 marks it failed); the next cell of a multirun starts its own."""
        if self.wandb_run is not None:
            if self.rows:
                self.wandb_run.summary.update(
                    {f"final/{k}": v for k, v in self.rows[-1].items() if isinstance(v, (int, float))}
                )
                self.wandb_run.summary.update(cost_totals(self.rows))
            self.wandb_run.finish(exit_code=exit_code)
            self.wandb_run = None


def cost_totals(rows: List[Dict]) -> Dict[str, float]:
    """The cell's cost over its rounds (`cost_total/<name>`, W&B's run summary): each `cost/` count
    or duration added up."""
    totals: Dict[str, float] = {}
    for row in rows:
        for k, v in row.items():
            if k.startswith("cost/") and isinstance(v, (int, float)):
                totals[f"cost_total/{k[5:]}"] = totals.get(f"cost_total/{k[5:]}", 0) + v
    return totals


def sample_table(samples: Path, round_idx: int) -> List[list]:
    with Path(samples).open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in itertools.islice(f, SAMPLE_TABLE_ROWS)]
    return [[round_idx] + [r[c] for c in SAMPLE_COLUMNS[1:]] for r in rows]


def wandb_mode(requested: str) -> str:
    if requested != "auto":
        return requested
    has_key = bool(os.environ.get("WANDB_API_KEY")) or Path.home().joinpath(".netrc").is_file()
    return "online" if has_key else "offline"


def _start_wandb(cfg, run_dir: Path):
    import wandb

    mode = wandb_mode(cfg.logger.mode)
    run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
    log.info("W&B: %s run %s (project %s)", mode, run_id, cfg.logger.project, extra=SCREEN)
    return wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        group=cfg.name,
        name=run_dir.name,
        id=run_id,
        resume="allow",
        mode=mode,
        dir=str(run_dir),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
