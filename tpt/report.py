"""Finished (or partial) runs -> paper-shaped tables and plots.

    python -m tpt.report outputs/            # every cell below it
    python -m tpt.report outputs/my_sweep

Each cell gives one row per round it was asked to run (rounds without metrics yet are `missing`);
writes report.md, report.csv, pass_by_round.png and pass_by_data_size.png into the folder.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from omegaconf import OmegaConf

from tpt.io import write_text_atomic

METRIC_COLUMNS = ("pass@1", "pass@k", "correct@k", "distinct_answers", "text_diversity")
COLUMNS = ("cell", "model", "task", "source", "pruning", "data_size", "round", "status", "kept", "k") + METRIC_COLUMNS


@dataclass
class Cell:
    path: Path
    config: Dict
    rounds: int  # rounds the cell was asked to run
    metrics: Dict[int, Dict] = field(default_factory=dict)  # round -> metrics row

    @property
    def name(self) -> str:
        return self.path.name


def _load_yaml(path: Path) -> Dict:
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}


def find_cells(root: Path) -> List[Cell]:
    dirs = {p.parent for p in root.rglob("run_config.yaml")} | {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
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
        cells.append(Cell(d, config, rounds, metrics))
    return cells


def table(cells: List[Cell], root: Path) -> List[Dict]:
    rows = []
    for cell in cells:
        cfg = cell.config
        base = {
            "cell": str(cell.path.relative_to(root)) if cell.path != root else cell.name,
            "model": cfg.get("model", {}).get("name", "?"),
            "task": cfg.get("task", {}).get("name", "?"),
            "source": cfg.get("source", {}).get("kind", "self"),
            "pruning": cfg.get("pruning", {}).get("strategy", "?"),
            "data_size": cfg.get("data", {}).get("size", "?"),
        }
        for r in range(cell.rounds + 1):
            m = cell.metrics.get(r)
            row = {**base, "round": r, "status": "done" if m else "missing", "k": "", "kept": ""}
            if m:
                k = max(int(key.split("@")[1]) for key in m if key.startswith("pass@"))
                row.update({"k": k, "pass@1": m["pass@1"], "pass@k": m[f"pass@{k}"], "correct@k": m[f"correct@{k}"],
                            "distinct_answers": m.get("distinct_answers"), "text_diversity": m.get("text_diversity")})
                if r > 0:
                    row["kept"] = m.get("data_size", "")  # examples really trained on (data_size: asked for)
            rows.append(row)
    return rows


def _fmt(v) -> str:
    if v is None or v == "":
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def to_markdown(rows: List[Dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def to_csv(rows: List[Dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plot(rows: List[Dict], out_dir: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "done"]
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for cell in dict.fromkeys(r["cell"] for r in done):
        pts = sorted((r["round"], r["pass@1"], r["pass@k"], r["k"]) for r in done if r["cell"] == cell)
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=cell)
        axes[1].plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=cell)
    ks = sorted({r["k"] for r in done})
    from matplotlib.ticker import MaxNLocator

    for ax, title in zip(axes, ("Pass@1", f"Pass@{'/'.join(map(str, ks))}")):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1)
        ax.set_title(f"{title} per round")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    written.append(_save(fig, out_dir / "pass_by_round.png"))
    plt.close(fig)

    # Final round of each cell against its data size, one line per (model, pruning): gt vs none.
    final = {}
    for r in done:
        if r["round"] > 0 and (r["cell"] not in final or r["round"] > final[r["cell"]]["round"]):
            final[r["cell"]] = r
    fig, ax = plt.subplots(figsize=(6, 4))
    series: Dict[tuple, List] = {}
    for r in final.values():
        if isinstance(r["data_size"], int):
            series.setdefault((r["model"], r["pruning"]), []).append((r["data_size"], r["pass@1"]))
    for (model, pruning), pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{model}, pruning={pruning}")
    ax.set_xlabel("training examples per round")
    ax.set_ylabel("Pass@1 (final round)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out_dir / "pass_by_data_size.png"))
    plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    tmp.replace(path)
    return path


def report(root: Path) -> List[Dict]:
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"tpt.report: {root} is not a directory")
    cells = find_cells(root)
    if not cells:
        raise SystemExit(f"tpt.report: no runs found under {root} (looked for run_config.yaml)")
    rows = table(cells, root)
    markdown = to_markdown(rows)
    write_text_atomic(root / "report.md", markdown + "\n")
    write_text_atomic(root / "report.csv", to_csv(rows))
    plots = plot(rows, root)
    missing = sum(r["status"] == "missing" for r in rows)
    print(markdown)
    print(f"\n{len(cells)} cell(s), {len(rows)} row(s), {missing} missing; wrote report.md, report.csv, "
          + ", ".join(p.name for p in plots) + f" in {root}")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tpt.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="a sweep directory or outputs/")
    report(ap.parse_args(argv).root)


if __name__ == "__main__":
    main(sys.argv[1:])
