"""Finished (or partial) run directories as the reports read them: each cell's config and per-round
metrics, each question's Pass@k, and the files a report writes (CSV, PNG)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import OmegaConf

from tpt.io import read_jsonl
from tpt.metrics import pass_at_k


@dataclass
class CellResult:
    """A cell's run directory as a report reads it: its config and each finished round's metrics."""

    path: Path
    config: Dict
    rounds: int  # rounds the cell was asked to run
    metrics: Dict[int, Dict] = field(default_factory=dict)  # round -> metrics row

    @property
    def name(self) -> str:
        return self.path.name

    def per_question(self, round_idx: int, k: int = 1) -> Optional[Dict[str, float]]:
        """Each eval question's Pass@k estimate in that round (None if its samples are not there)."""
        path = self.path / f"round_{round_idx}" / "eval" / "samples.jsonl"
        if not path.is_file():
            return None
        verdicts: Dict[str, List[bool]] = {}
        for r in read_jsonl(path):
            verdicts.setdefault(r["qid"], []).append(bool(r["correct"]))
        return {q: pass_at_k(len(v), sum(v), k) for q, v in verdicts.items()}


def largest_k(metrics: Dict) -> int:
    return max(int(m.group(1)) for key in metrics if (m := re.fullmatch(r"pass@(\d+)", key)))


def _load_yaml(path: Path) -> Dict:
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}


def find_cells(root: Path) -> List[CellResult]:
    dirs = {p.parent for p in root.rglob("run_config.yaml")} | {
        p.parent.parent for p in root.rglob(".hydra/config.yaml")
    }
    cells = []
    for d in sorted(dirs):
        hydra_cfg = _load_yaml(d / ".hydra" / "config.yaml")
        config = _load_yaml(d / "run_config.yaml") or hydra_cfg
        metrics = {}
        if (d / "metrics.jsonl").is_file():
            for line in (d / "metrics.jsonl").read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    metrics[row["round"]] = row
        rounds = hydra_cfg.get("rounds", max(metrics, default=0))
        cells.append(CellResult(d, config, rounds, metrics))
    return cells


def save_figure(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    tmp.replace(path)
    return path


def load_cells(root: Path) -> List[CellResult]:
    if not root.is_dir():
        raise SystemExit(f"tpt.report: {root} is not a directory")
    cells = find_cells(root)
    if not cells:
        raise SystemExit(f"tpt.report: no runs found under {root} (looked for run_config.yaml)")
    return cells


def to_csv(rows: List[Dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
