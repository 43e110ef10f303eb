"""The paper's tables beside ours: `python -m tpt.report <dir> --paper table3`.

Each row of the paper's table (tpt/paper.py) is matched to the cell whose run_config.yaml says
`paper_row: <id>`, at the row's round. Pass@1 and Pass@k are printed in percent like the paper, ours
with one standard error over questions, and `ours - paper` in percentage points; a row without its
cell or round is `missing`. A cell that ran with another k than the paper's shows its largest k,
marked, and no difference is taken across different k. Writes paper_<table>.md, paper_<table>.csv
and paper_<table>.png (Table 3: the paper's Figure 2; Table 6: Figure 3; Table 5: the pruning
criteria side by side) into the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tpt.io import write_text_atomic
from tpt.metrics import paired_difference
from tpt.paper import GPT4O_GSM8K_PASS1, QUESTIONS, TABLES, Row, Table, inconsistencies
from tpt.pruning import RULES
from tpt.results import CellResult, largest_k, load_cells, save_figure, to_csv
from tpt.summary import count_of

CSV_COLUMNS = (
    "table",
    "row",
    "paper_row",
    "round",
    "status",
    "cell",
    "paper_k",
    "our_k",
    "pass@1_pct",
    "pass@1_se_pct",
    "paper_pass@1_pct",
    "d_pass@1_pct",
    "pass@k_pct",
    "pass@k_se_pct",
    "paper_pass@k_pct",
    "d_pass@k_pct",
    "correct@k",
    "questions",
    "paper_correct@k",
    "paper_questions",
    "paper_from",
    "gain@1_pct",
    "gain@1_se_pct",
    "paper_gain@1_pct",
    "gain@k_pct",
    "paper_gain@k_pct",
)


# ---- matching and the numbers ----------------------------------------------------------------


def cells_by_paper_row(cells: Sequence[CellResult]) -> Dict[str, List[CellResult]]:
    by_row: Dict[str, List[CellResult]] = {}
    for cell in cells:
        if cell.config.get("paper_row"):
            by_row.setdefault(str(cell.config["paper_row"]), []).append(cell)
    return by_row


def _percent(value) -> Optional[float]:
    return None if value is None else round(100 * value, 4)  # rounded: no 52.50000000001 in the CSV


def paper_side(table: Table, row: Row) -> Dict:
    task = table.task_of(row)
    return {
        "table": table.id,
        "row": row.label,
        "paper_row": row.ours[0],
        "round": row.ours[1],
        "status": "missing",
        "paper_k": table.k_of(row),
        "paper_pass@1_pct": row.pass1,
        "paper_pass@k_pct": row.passk,
        "paper_correct@k": row.correct,
        "paper_questions": QUESTIONS.get(task) if row.correct is not None else None,
        "paper_from": _table_name(row.paper_from[0]) + f", {row.paper_from[1]}" if row.paper_from else "",
    }


def _table_name(table_id: str) -> str:
    return table_id.replace("table", "Table ")


def ours_side(cell: CellResult, root: Path, row: Row, paper_k: int) -> Dict:
    """Our numbers for the row, in percent; at the paper's k when the cell has it, else our largest k."""
    m = cell.metrics[row.ours[1]]
    k = paper_k if f"pass@{paper_k}" in m else largest_k(m)
    pass1, passk = _percent(m["pass@1"]), _percent(m[f"pass@{k}"])
    return {
        "status": "done",
        "cell": str(cell.path.relative_to(root)) if cell.path != root else cell.name,
        "our_k": k,
        "pass@1_pct": pass1,
        "pass@1_se_pct": _percent(m.get("pass@1_se")),
        "d_pass@1_pct": round(pass1 - row.pass1, 4),
        "pass@k_pct": passk,
        "pass@k_se_pct": _percent(m.get(f"pass@{k}_se")),
        "d_pass@k_pct": round(passk - row.passk, 4) if k == paper_k else None,
        "correct@k": m.get(f"correct@{k}"),
        "questions": m.get("questions"),
    }


def paper_baseline(table: Table, row: Row) -> Row:
    """The row's untrained model in the paper: the baseline row of the same cell, else of the same
    model (and task) in the table."""
    rounds_0 = [r for r in table.rows if r.ours[1] == 0 and table.task_of(r) == table.task_of(row)]
    return next(
        (r for r in rounds_0 if r.ours[0] == row.ours[0]), next((r for r in rounds_0 if r.model == row.model), row)
    )


def shape_side(cell: CellResult, row: Row, base: Row, ours: Dict) -> Dict:
    """A miniature's comparison: our gain over our own round 0 (Pass@1 with a paired standard error)
    beside the paper's gain over its baseline. A 135M model on arithmetic minus Gemma on GSM8K is not
    a difference anyone can read; whether both rounds move the same way is."""
    m0 = cell.metrics.get(0)
    if row.ours[1] == 0 or m0 is None:
        return {"shape": True, "gain@1_pct": None, "gain@k_pct": None, "d_pass@1_pct": None, "d_pass@k_pct": None}
    now, before = cell.per_question(row.ours[1]), cell.per_question(0)
    d = paired_difference(now, before) if now and before else None
    k = ours["our_k"]
    return {
        "shape": True,
        "d_pass@1_pct": None,
        "d_pass@k_pct": None,  # not comparable: see the docstring
        "gain@1_pct": round(ours["pass@1_pct"] - _percent(m0["pass@1"]), 4),
        "gain@1_se_pct": _percent(d["se"]) if d else None,
        "paper_gain@1_pct": round(row.pass1 - base.pass1, 4),
        "gain@k_pct": round(ours["pass@k_pct"] - _percent(m0[f"pass@{k}"]), 4) if f"pass@{k}" in m0 else None,
        "paper_gain@k_pct": round(row.passk - base.passk, 4),
    }


def compare_table(table: Table, cells: Sequence[CellResult], root: Path) -> Tuple[List[Dict], List[str]]:
    """One dict per paper row, in the paper's order, and notes on what was ambiguous."""
    by_row, rows, notes = cells_by_paper_row(cells), [], []
    for row in table.rows:
        out = paper_side(table, row)
        row_id, round_idx = row.ours
        found = [c for c in by_row.get(row_id, []) if round_idx in c.metrics]
        if len(found) > 1:
            notes.append(f"{row_id}@{round_idx}: {len(found)} cells have it; using {found[0].path.relative_to(root)}")
        if found:
            out.update(ours_side(found[0], root, row, out["paper_k"]))
            if found[0].config.get("miniature"):
                out.update(shape_side(found[0], row, paper_baseline(table, row), out))
        rows.append(out)
    return rows, notes


# ---- markdown and CSV ------------------------------------------------------------------------


def _num(value, sign: bool = False) -> str:
    return "-" if value is None else (f"{value:+.2f}" if sign else f"{value:.2f}")


def _ours(r: Dict, key: str) -> str:
    if r["status"] == "missing":
        return "missing"
    se = r[f"{key}_se_pct"]
    text = _num(r[f"{key}_pct"]) + ("" if se is None else f" ± {se:.2f}")
    return text + (f" (k={r['our_k']})" if key == "pass@k" and r["our_k"] != r["paper_k"] else "")


def _correct(r: Dict) -> str:
    if r["status"] == "missing":
        return "missing"
    if r["correct@k"] is None or not r["questions"]:
        return "-"
    text = count_of(r, "correct@k")
    return text + (f" (k={r['our_k']})" if r["our_k"] != r["paper_k"] else "")


def _difference(r: Dict, at: str) -> str:
    """ours − paper; for a miniature, our gain over round 0 beside the paper's gain over its baseline."""
    if not r.get("shape"):
        return _num(r.get(f"d_pass{at}_pct"), sign=True)
    if r.get(f"gain{at}_pct") is None:
        return "-"
    se = r.get(f"gain{at}_se_pct")
    ours = _num(r[f"gain{at}_pct"], sign=True) + ("" if se is None else f" ± {se:.2f}")
    return f"gain {ours} vs paper {_num(r[f'paper_gain{at}_pct'], sign=True)}"


def _row_label(r: Dict) -> str:
    return f"{r['row']} [paper: {r['paper_from']}]" if r["paper_from"] else r["row"]


def to_markdown(table: Table, rows: List[Dict], notes: List[str]) -> str:
    k = f"Pass@{table.k}" if table.k else "Pass@k"
    with_correct = any(r["paper_correct@k"] is not None for r in rows)
    head = ["paper row", "ours from", "Pass@1 ours", "paper", "ours − paper", f"{k} ours", "paper", "ours − paper"]
    head += [f"Correct@{table.k} ours", "paper"] if with_correct else []
    lines = [
        f"## {_table_name(table.id)}: {table.title} — ours beside the paper",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cols = [
            _row_label(r),
            f"{r['paper_row']}@{r['round']}",
            _ours(r, "pass@1"),
            _num(r["paper_pass@1_pct"]),
            _difference(r, "@1"),
            _ours(r, "pass@k"),
            _num(r["paper_pass@k_pct"]),
            _difference(r, "@k"),
        ]
        if with_correct:
            paper = "-" if r["paper_correct@k"] is None else f"{r['paper_correct@k']}/{r['paper_questions']}"
            cols += [_correct(r), paper]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in table_notes(table, rows) + notes])


def table_notes(table: Table, rows: List[Dict]) -> List[str]:
    notes = [
        "Pass@1 and Pass@k in percent; ours ± one standard error over questions; ours − paper in "
        "percentage points. `ours from`: the cell with `paper_row: <id>` in its run_config.yaml, at that round."
    ]
    if table.k is None:
        ks = {table.task_of(row): table.k_of(row) for row in table.rows}
        notes.append("Pass@k: " + ", ".join(f"k={k} for {task}" for task, k in ks.items()) + ".")
    other_k = sorted({r["our_k"] for r in rows if r["status"] == "done" and r["our_k"] != r["paper_k"]})
    if other_k:
        notes.append(
            f"Rows marked (k=...) ran without the paper's k: ours is Pass@k and Correct@k at the cell's "
            f"largest k ({', '.join(map(str, other_k))}), so no difference to the paper is given."
        )
    missing = sum(r["status"] == "missing" for r in rows)
    if missing:
        notes.append(f"{missing} of {len(rows)} rows missing: no cell with that paper_row has metrics for that round.")
    if any(r.get("shape") for r in rows):
        notes.append(
            "Miniature rows (miniature=true) compare shapes, not numbers: `gain` is our change since our "
            "own round 0 (± a paired standard error over the same questions), beside the paper's change "
            "since its baseline of that model. Full-scale rows give ours − paper."
        )
    return notes + inconsistencies(table.id)


# ---- figures ---------------------------------------------------------------------------------


@dataclass
class Bar:
    legend: str
    value: Optional[float]  # None: ours is missing
    color: str
    paper: bool  # the paper's number (hatched, lighter) rather than ours
    se: Optional[float] = None


OURS_VS_PAPER = "tab:blue"  # one hue per series: ours solid, the paper's hatched


def _pair(r: Dict, row: Row, key: str, color: str, name: str = "") -> List[Bar]:
    """Ours and the paper's bar for one paper row and metric (pass@1 or pass@k)."""
    paper = row.pass1 if key == "pass@1" else row.passk
    suffix = f", {name}" if name else ""
    return [
        Bar(f"ours{suffix} (± 1 SE)", r.get(f"{key}_pct"), color, False, r.get(f"{key}_se_pct")),
        Bar(f"paper{suffix}", paper, color, True),
    ]


def draw_bars(ax, groups: List[Tuple[str, List[Bar]]], ylabel: str, width: float = 0.38) -> None:
    """Bars side by side within each group, groups one after another (no gaps for absent bars)."""
    x, ticks, top = 0.0, [], 1.0
    for name, bars in groups:
        for i, bar in enumerate(bars):
            pos = x + i * width
            if bar.value is None:
                ax.text(pos, 0, "missing", rotation=90, ha="center", va="bottom", fontsize=7, color="dimgray")
                continue
            ax.bar(
                pos,
                bar.value,
                width,
                color=bar.color,
                alpha=0.45 if bar.paper else 0.9,
                hatch="//" if bar.paper else None,
                edgecolor=bar.color,
                label=bar.legend,
                yerr=bar.se,
                capsize=3,
                error_kw={"elinewidth": 1},
            )
            shown = f"{bar.value:.1f}" if bar.value >= 10 else f"{bar.value:.2f}"  # CodeContests lives below 10%
            ax.text(
                pos,
                bar.value + (bar.se or 0),
                shown,
                ha="center",
                va="bottom",
                fontsize=6,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
            )  # over reference lines
            top = max(top, bar.value + (bar.se or 0))
        ticks.append((x + (len(bars) - 1) * width / 2, name))
        x += len(bars) * width + 0.5
    ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=8)
    ax.set_ylim(0, top * 1.2)  # headroom for the value labels
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def _k_label(paper_k: int, rows: List[Dict]) -> str:
    ours = sorted({r["our_k"] for r in rows if r["status"] == "done" and r["our_k"] != paper_k})
    return f"Pass@k (%)\npaper k={paper_k}, ours k={'/'.join(map(str, ours))}" if ours else f"Pass@{paper_k} (%)"


def _legend_below(fig, axes) -> None:
    """One legend for the figure, below the panels, so it never covers a bar."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=min(len(seen), 4), fontsize=8, frameon=False)


def _by_model(table: Table, rows: List[Dict]) -> Dict[str, List[Tuple[Row, Dict]]]:
    models: Dict[str, List[Tuple[Row, Dict]]] = {}
    for row, r in zip(table.rows, rows):
        models.setdefault(row.model, []).append((row, r))
    return models


def figure_rounds(table: Table, rows: List[Dict]):
    """The paper's Figure 2: Pass@1 and Pass@k per round for each model, ours beside the paper's."""
    import matplotlib.pyplot as plt

    models = _by_model(table, rows)
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 7.5), squeeze=False)
    for col, (model, pairs) in enumerate(models.items()):
        for line, key in enumerate(("pass@1", "pass@k")):
            groups = [(row.stage.replace(" (", "\n("), _pair(r, row, key, OURS_VS_PAPER)) for row, r in pairs]
            label = "Pass@1 (%)" if key == "pass@1" else _k_label(table.k, [r for _, r in pairs])
            draw_bars(axes[line][col], groups, label)
        axes[0][col].set_title(model)
    fig.suptitle(f"{table.title}: ours beside the paper (its Figure 2)", fontsize=10)
    _legend_below(fig, axes.flat)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def figure_before_after(pairs_by_model: Dict[str, List[Tuple[Row, Dict]]]):
    """The paper's Figure 3: each model's GSM8K Pass@1 at baseline and after TPT, with GPT-4o's line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.4 * len(pairs_by_model) + 2, 5))
    groups = []
    for model, pairs in pairs_by_model.items():
        (base, rb), (last, rl) = pairs[0], pairs[-1]  # each model's first row is its baseline, last its final round
        bars = _pair(rb, base, "pass@1", "tab:gray", "baseline") + _pair(rl, last, "pass@1", "tab:blue", "after TPT")
        groups.append((f"{model}\nafter: {last.stage}", bars))
    draw_bars(ax, groups, "GSM8K Pass@1 (%)", width=0.3)
    ax.axhline(
        GPT4O_GSM8K_PASS1, color="tab:red", linestyle="--", linewidth=1, label=f"GPT-4o, {GPT4O_GSM8K_PASS1:g}% (paper)"
    )
    ax.set_ylim(0, 105)
    ax.set_title("Pass@1 before and after TPT: ours beside the paper (its Figure 3)", fontsize=10)
    _legend_below(fig, [ax])
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# Table 5's row ids spell out what the figure groups by: t5_<task>_<pruning rule>_<size>[_9b]
TABLE5_ID = re.compile(r"t5_[a-z0-9]+_(?P<criterion>[a-z_]+)_(?P<size>\d+k)(?P<nine>_9b)?")


def figure_pruning(table: Table, rows: List[Dict]):
    """Table 5: ground truth vs no pruning vs soft-positive, per task and data size, ours and the paper's."""
    import matplotlib.pyplot as plt

    tasks = _by_model(table, rows)  # Table 5's "model" column is the task
    fig, axes = plt.subplots(2, len(tasks), figsize=(6.5 * len(tasks), 8), squeeze=False)
    for col, (task, pairs) in enumerate(tasks.items()):
        baseline = [(row, r) for row, r in pairs if row.ours[1] == 0]
        trained = [(row, r) for row, r in pairs if row.ours[1] > 0]
        for line, key in enumerate(("pass@1", "pass@k")):
            ax = axes[line][col]
            draw_bars(
                ax,
                _pruning_groups(trained, key),
                "Pass@1 (%)" if key == "pass@1" else _k_label(table.k_of(pairs[0][0]), [r for _, r in pairs]),
                width=0.3,
            )
            _baseline_lines(ax, baseline, key)
        axes[0][col].set_title(f"{task} (Gemma-2-2B, one round)")
    fig.suptitle("Pruning criterion: ours beside the paper (Table 5, ground truth from Tables 2 and 4)", fontsize=10)
    _legend_below(fig, axes.flat)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig


def _criterion_and_setting(row: Row) -> Tuple[str, str]:
    m = TABLE5_ID.fullmatch(row.ours[0])
    return m["criterion"], f"{m['size']} examples" + ("\n(9B data)" if m["nine"] else "")


def _pruning_groups(trained: List[Tuple[Row, Dict]], key: str) -> List[Tuple[str, List[Bar]]]:
    """One group per data setting, its bars in the order of the pruning rules (tpt.pruning.RULES); groups
    by data size."""
    parsed = sorted(
        ((*_criterion_and_setting(row), row, r) for row, r in trained), key=lambda p: list(RULES).index(p[0])
    )
    groups: Dict[str, List[Bar]] = {}
    for criterion, setting, row, r in parsed:
        rule = RULES[criterion]
        groups.setdefault(setting, []).extend(_pair(r, row, key, rule.color, rule.label))
    return sorted(groups.items(), key=lambda g: (int(g[0].split("k")[0]), g[0]))


def _baseline_lines(ax, baseline: List[Tuple[Row, Dict]], key: str) -> None:
    for row, r in baseline:
        paper = row.pass1 if key == "pass@1" else row.passk
        # behind the bars, so the lines never hide a bar's value label
        ax.axhline(paper, color="black", linestyle="--", linewidth=1, label="baseline, paper", zorder=0)
        if r.get(f"{key}_pct") is not None:
            ax.axhline(r[f"{key}_pct"], color="black", linestyle=":", linewidth=1.5, label="baseline, ours", zorder=0)
        ax.set_ylim(0, max(ax.get_ylim()[1], paper * 1.2, (r.get(f"{key}_pct") or 0) * 1.2))


def _close(fig, out: Path) -> Path:
    import matplotlib.pyplot as plt

    save_figure(fig, out)
    plt.close(fig)
    return out


def figures(table: Table, rows: List[Dict], cells: Sequence[CellResult], root: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    out = root / f"paper_{table.id}.png"
    if table.id == "table3":
        fig = figure_rounds(table, rows)
    elif table.id == "table5":
        fig = figure_pruning(table, rows)
    elif table.id == "table6":
        models = _by_model(table, rows)
        table3_rows, _ = compare_table(TABLES["table3"], cells, root)
        if any(r["status"] == "done" for r in table3_rows):  # Figure 3 also shows the Gemma models when they ran here
            models = {**_by_model(TABLES["table3"], table3_rows), **models}
        fig = figure_before_after(models)
    else:
        return []
    # Say what "ours" ran: a CPU miniature is another model on another task than the paper's.
    ran = sorted(
        {
            f"{c.config.get('model', {}).get('name', '?')} on {c.config.get('task', {}).get('name', '?')}"
            for c in cells
            if c.config.get("paper_row") in {row.ours[0] for row in table.rows}
        }
    )
    if ran:
        fig.text(0.005, 0.995, "ours: " + ", ".join(ran), fontsize=8, ha="left", va="top")
    return [_close(fig, out)]


def paper_report(root: Path, table_id: str) -> List[Dict]:
    root = Path(root)
    cells, table = load_cells(root), TABLES[table_id]
    rows, notes = compare_table(table, cells, root)
    markdown = to_markdown(table, rows, notes)
    write_text_atomic(root / f"paper_{table.id}.md", markdown + "\n")
    write_text_atomic(root / f"paper_{table.id}.csv", to_csv(rows, CSV_COLUMNS))
    written = [f"paper_{table.id}.md", f"paper_{table.id}.csv"] + [p.name for p in figures(table, rows, cells, root)]
    missing = sum(r["status"] == "missing" for r in rows)
    print(markdown)
    print(f"\n{table.id}: {len(rows)} paper row(s), {missing} missing; wrote {', '.join(written)} in {root}")
    return rows
