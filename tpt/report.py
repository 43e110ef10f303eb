"""Finished (or partial) runs -> paper-shaped tables and plots.

    python -m tpt.report outputs/            # every cell below it
    python -m tpt.report outputs/my_sweep

    python -m tpt.report outputs/my_sweep --compare 'pruning=gt@1' 'pruning=none@1'

Each cell gives one row per round it was asked to run (rounds without metrics yet are `missing`):
every Pass@k with its standard error over questions, Correct@k as a count of questions, the share of
eval samples with an answer (`format`) and that stopped at the token limit (`cut`), the examples
kept (`2000 → 412` where fewer were reached than asked for), and the
change of Pass@1 since round 0 with a paired standard error on the same questions (`*`: larger than
two standard errors). `--compare A B` sets two cells (or two rounds, `<cell>@<round>`, default the
last) side by side on the questions both answered. Writes report.md, report.csv, pass_by_round.png,
pass_by_data_size.png, and per cell (the first 12) pass_at_k.png (Pass@k against k, a curve per
round) and completion_lengths.png (eval completion lengths per round) into the folder.

    python -m tpt.report outputs/ --paper table3   # the paper's Table 3 beside ours (tpt/paper_report.py)

`--paper <table>` prints that table of the paper with our number, its standard error and ours - paper
beside each of its rows, and writes paper_<table>.md, .csv and (Tables 3, 5, 6) .png instead.

    python -m tpt.report outputs/my_sweep --disagreements 5

prints, per cell and round, how often the task's answer rule and the second judge (math-verify on the
whole completion) disagree, with 5 eval samples of each kind.

    python -m tpt.report outputs/my_sweep --cost --gpu-hour-price 2.5

prints (and writes cost.md) what each cell and the sweep cost: wall hours, device-hours, tokens
prompted, generated and trained, what was reused (chunks of an interrupted attempt, generations,
verdicts, checkpoints) and the hours it saved, the GPU-hours' price; then, per cell, the plan's
predictions (tpt/plan.py, from the cell's pinned config) beside what it measured.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

from tpt.contamination import describe
from tpt.io import read_json, read_jsonl, write_text_atomic
from tpt.metrics import paired_difference, per_question_pass
from tpt.paper import TABLES
from tpt.paper_report import paper_report
from tpt.plan import predicted
from tpt.preflight import typed
from tpt.results import CellResult, largest_k, load_cells, save_figure, to_csv
from tpt.summary import kept_data, reused, stage_seconds
from tpt.tracking import cost_totals

METRIC_COLUMNS = (
    "pass@1",
    "pass@1_se",
    "pass@k",
    "pass@k_se",
    "correct@k",
    "questions",
    "d_pass@1",
    "d_pass@1_se",
    "d_sig",
    "format",
    "cut",
    "distinct_answers",
    "text_diversity",
)
COLUMNS = ("cell", "model", "task", "source", "pruning", "data_size", "round", "status", "kept", "k") + METRIC_COLUMNS
SIGNIFICANT = 2.0  # a difference is marked when it exceeds this many standard errors


def table(cells: List[CellResult], root: Path) -> List[Dict]:
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
                k = largest_k(m)
                row.update(
                    {
                        "k": k,
                        "pass@1": m["pass@1"],
                        "pass@1_se": m.get("pass@1_se"),
                        "pass@k": m[f"pass@{k}"],
                        "pass@k_se": m.get(f"pass@{k}_se"),
                        "correct@k": m[f"correct@{k}"],
                        "questions": m.get("questions"),
                        "format": m.get("format_rate"),
                        "cut": m.get("cut_rate"),
                        "distinct_answers": m.get("distinct_answers"),
                        "text_diversity": m.get("text_diversity"),
                    }
                )
                if r > 0 and 0 in cell.metrics:
                    row.update(since_round_0(cell, r))
                if r > 0:
                    row["kept"] = kept_data(m)  # examples really trained on; `2000 → 412` short of data.size
                    row["trained"] = m.get("data_size")
            rows.append(row)
    return rows


def since_round_0(cell: CellResult, r: int) -> Dict:
    """Pass@1 of round r minus round 0's, paired over the questions both answered."""
    now, before = cell.per_question(r), cell.per_question(0)
    if now is None or before is None:
        return {}
    d = paired_difference(now, before)
    return {"d_pass@1": d["diff"], "d_pass@1_se": d["se"], "d_sig": "*" if abs(d["z"]) > SIGNIFICANT else ""}


def _fmt(v) -> str:
    if v is None or v == "":
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _md_cell(row: Dict, column: str) -> str:
    """Markdown folds each standard error into its value (`0.453 ± 0.041`) and Correct@k into `n/questions`."""
    value = row.get(column)
    if column == "correct@k" and value not in (None, "") and row.get("questions"):
        return (
            f"{value:.0f}/{row['questions']}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}/{row['questions']}"
        )
    se = row.get(f"{column}_se")
    if isinstance(value, float) and isinstance(se, float):
        return (
            f"{value:+.3f} ± {se:.3f}{row.get('d_sig', '')}" if column.startswith("d_") else f"{value:.3f} ± {se:.3f}"
        )
    return _fmt(value)


MARKDOWN_COLUMNS = [c for c in COLUMNS if not c.endswith("_se") and c not in ("questions", "d_sig")]


def to_markdown(rows: List[Dict]) -> str:
    lines = ["| " + " | ".join(MARKDOWN_COLUMNS) + " |", "|" + "---|" * len(MARKDOWN_COLUMNS)]
    lines += ["| " + " | ".join(_md_cell(r, c) for c in MARKDOWN_COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def compare(cells: List[CellResult], root: Path, a: str, b: str) -> str:
    """Two cells or rounds (`<cell>@<round>`, default the last) side by side on their common questions."""
    picked = [_pick(cells, root, spec) for spec in (a, b)]
    ks = sorted({1, min(largest_k(c.metrics[r]) for c, r in picked)})
    lines = [f"A = {a}, B = {b}", "", "| metric | A | B | A - B (paired) | questions |", "|---|---|---|---|---|"]
    for k in ks:
        qa, qb = (c.per_question(r, k) for c, r in picked)
        if qa is None or qb is None:
            raise SystemExit("tpt.report: --compare needs both rounds' eval/samples.jsonl")
        d = paired_difference(qa, qb)
        mark = " *" if abs(d["z"]) > SIGNIFICANT else ""
        common = sorted(set(qa) & set(qb))
        mean = lambda q: sum(q[i] for i in common) / len(common)  # noqa: B023 (called in this iteration)
        lines.append(
            f"| Pass@{k} | {mean(qa):.3f} | {mean(qb):.3f} | {d['diff']:+.3f} ± {d['se']:.3f}{mark} "
            f"| {d['questions']} |"
        )
    return "\n".join(lines + ["", f"*: |A - B| > {SIGNIFICANT:g} standard errors (paired over questions)"])


def _pick(cells: List[CellResult], root: Path, spec: str):
    name, _, round_text = spec.rpartition("@") if "@" in spec else (spec, "", "")
    matches = [c for c in cells if str(c.path.relative_to(root)) == name or c.name == name]
    if len(matches) != 1:
        known = ", ".join(str(c.path.relative_to(root)) for c in cells)
        raise SystemExit(f"tpt.report: --compare {spec!r} names {len(matches)} cells; cells: {known}")
    cell = matches[0]
    r = int(round_text) if round_text else max(cell.metrics, default=0)
    if r not in cell.metrics:
        raise SystemExit(f"tpt.report: {name} has no metrics for round {r}")
    return cell, r


def data_size_series(rows: List[Dict]) -> Dict[tuple, List[tuple]]:
    """pass_by_data_size.png's points: per (model, pruning), each cell's last round as (examples trained
    on, Pass@1, its standard error), by examples."""
    final: Dict[str, Dict] = {}
    for r in rows:
        if r["status"] == "done" and r["round"] > 0 and r["round"] > final.get(r["cell"], {}).get("round", 0):
            final[r["cell"]] = r
    series: Dict[tuple, List[tuple]] = {}
    for r in final.values():
        if isinstance(r.get("trained"), int):
            series.setdefault((r["model"], r["pruning"]), []).append((r["trained"], r["pass@1"], r["pass@1_se"] or 0))
    return {key: sorted(points) for key, points in series.items()}


def plot(rows: List[Dict], out_dir: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "done"]
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for cell in dict.fromkeys(r["cell"] for r in done):
        pts = sorted((r for r in done if r["cell"] == cell), key=lambda r: r["round"])
        for ax, key in zip(axes, ("pass@1", "pass@k")):  # error bars: one standard error over questions
            se = [r.get(f"{key}_se") or 0.0 for r in pts]
            ax.errorbar([r["round"] for r in pts], [r[key] for r in pts], yerr=se, marker="o", capsize=3, label=cell)
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
    written.append(save_figure(fig, out_dir / "pass_by_round.png"))
    plt.close(fig)

    # Final round of each cell against the examples it trained on (what was reached, not what data.size
    # asked: a scaled or short round trains on fewer), one line per (model, pruning): gt vs none.
    fig, ax = plt.subplots(figsize=(6, 4))
    series = data_size_series(rows)
    for (model, pruning), pts in sorted(series.items()):
        ax.errorbar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            yerr=[p[2] for p in pts],
            marker="o",
            capsize=3,
            label=f"{model}, pruning={pruning}",
        )
    ax.set_xlabel("examples trained on per round (final round; error bars: one standard error)")
    ax.set_ylabel("Pass@1 (final round)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(save_figure(fig, out_dir / "pass_by_data_size.png"))
    plt.close(fig)
    return written


def disagreements(root: Path, per_kind: int = 3) -> str:
    """Where the task's answer rule and the second judge (math-verify) disagree: for every cell and
    round, the counts and up to `per_kind` eval samples of each kind."""
    lines = []
    for cell in load_cells(Path(root)):
        for r in sorted(cell.metrics):
            path = cell.path / f"round_{r}" / "eval" / "samples.jsonl"
            rows = [s for s in read_jsonl(path) if "second_correct" in s] if path.is_file() else []
            if not rows:
                continue
            kinds = {
                "the rule says right, math-verify wrong": [s for s in rows if s["correct"] and not s["second_correct"]],
                "math-verify says right, the rule wrong": [s for s in rows if s["second_correct"] and not s["correct"]],
            }
            lines.append(
                f"## {cell.name}, round {r}: {len(rows)} samples, "
                + ", ".join(f"{len(v)} where {k}" for k, v in kinds.items())
            )
            for kind, found in kinds.items():
                for s in found[:per_kind]:
                    tail = s["completion"][-300:].replace("\n", "\n    ")
                    lines.append(
                        f"- {kind}: {s['qid']} sample {s['sample']}, gold {s['answer']!r}, rule read "
                        f"{s.get('pred')!r}; completion ends:\n    {tail}"
                    )
    return "\n".join(lines) if lines else f"no eval samples judged by both judges under {root}"


MAX_PANELS = 12  # cells drawn in the per-cell figures (the first ones, in the table's order)


def eval_samples(cell: CellResult) -> Dict[int, List[dict]]:
    """Each finished round's eval samples."""
    found = {}
    for r in sorted(cell.metrics):
        path = cell.path / f"round_{r}" / "eval" / "samples.jsonl"
        if path.is_file():
            found[r] = read_jsonl(path)
    return found


def pass_curve(samples: List[dict]) -> List[float]:
    """Unbiased Pass@k for every k from 1 to the samples per question (the fewest any question has)."""
    by_q: Dict[str, List[bool]] = {}
    for s in samples:
        by_q.setdefault(s["qid"], []).append(bool(s["correct"]))
    n = min(len(v) for v in by_q.values())
    return [sum(per_question_pass(list(by_q.values()), k)) / len(by_q) for k in range(1, n + 1)]


def plot_reasoning(cells: List[CellResult], out_dir: Path) -> List[Path]:
    """How the reasoning changed, per cell: Pass@k against k with one curve per round (the paper's
    "Pass@1 rises, Pass@k does not" at a glance: pass_at_k.png) and the eval completions' lengths
    in tokens per round (completion_lengths.png), from the samples themselves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    drawn = [(c, eval_samples(c)) for c in cells]
    drawn = [(c, s) for c, s in drawn if s][:MAX_PANELS]
    if not drawn:
        return []
    cols = min(3, len(drawn))
    rows = -(-len(drawn) // cols)
    written = []
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, (cell, by_round) in zip(axes.flat, drawn):
        for r, samples in by_round.items():
            curve = pass_curve(samples)
            ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=f"round {r}")
        ax.set_title(textwrap.fill(cell.name, 60), fontsize=7)  # a sweep cell's name can be long
        ax.set_xlabel("k (samples per question)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("Pass@k")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(drawn) :]:
        ax.set_visible(False)
    fig.tight_layout()
    written.append(save_figure(fig, out_dir / "pass_at_k.png"))
    plt.close(fig)

    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, (cell, by_round) in zip(axes.flat, drawn):
        rounds = list(by_round)
        ax.boxplot([[s["n_tokens"] for s in by_round[r]] for r in rounds], showfliers=False)
        ax.set_xticks(range(1, len(rounds) + 1), [str(r) for r in rounds])
        ax.set_title(textwrap.fill(cell.name, 60), fontsize=7)  # a sweep cell's name can be long
        ax.set_xlabel("round")
        ax.set_ylabel("eval completion length (tokens)")  # box: quartiles; whiskers: 1.5 IQR
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(drawn) :]:
        ax.set_visible(False)
    fig.tight_layout()
    written.append(save_figure(fig, out_dir / "completion_lengths.png"))
    plt.close(fig)
    return written


def cost(cells: List[CellResult], gpu_hour_price: Optional[float] = None) -> str:
    """What each cell cost over its finished rounds, and the sweep in total: wall hours, device-hours
    (GPU-hours on GPUs, core-hours on CPUs), tokens prompted, generated and trained, what was reused
    instead of computed and the hours computing it had taken; with a price per GPU-hour, what the
    GPU-hours cost. Then the plan's predictions (tpt.plan, from each cell's pinned config) beside
    what the cell measured."""
    lines = [
        "cell | device | rounds | wall h | device h | prompt tokens | generated tokens | trained tokens | "
        "reused | saved h",
        "--- | --- | --- | --- | --- | --- | --- | --- | --- | ---",
    ]
    totals: Dict[str, float] = {}
    measured: Dict[str, Dict] = {}
    for cell in cells:
        rows = [cell.metrics[r] for r in sorted(cell.metrics) if "cost/device_hours" in cell.metrics[r]]
        if not rows:
            continue
        device = rows[-1].get("cost/device", "cpu")
        summed = {f"cost/{k[len('cost_total/') :]}": v for k, v in cost_totals(rows).items()}  # as W&B's summary
        figures = {
            "wall": stage_seconds(summed) / 3600,
            device: summed["cost/device_hours"],
            "prompt": summed.get("cost/prompt_tokens", 0),
            "generated": summed.get("cost/generated_tokens", 0),
            "trained": summed.get("cost/trained_tokens", 0),
            "saved": summed.get("cost/saved_s", 0.0) / 3600,
        }
        reuse = {k: summed.get(k, 0) for k in REUSE_KEYS}
        for k, v in {**figures, **reuse}.items():
            totals[k] = totals.get(k, 0) + v
        measured[cell.name] = {"device": device, "rounds": len(rows) - 1, **figures}
        lines.append(
            f"{cell.name} | {device} | {len(rows) - 1} | {figures['wall']:.3f} | {figures[device]:.3f} | "
            f"{figures['prompt']:,.0f} | {figures['generated']:,.0f} | {figures['trained']:,.0f} | "
            f"{reused(reuse)} | {figures['saved']:.3f}"
        )
    if len(lines) == 2:
        return "no cost recorded (runs from a tpt before cost accounting)"
    lines.append(
        f"**total** | | | {totals['wall']:.3f} | "
        + ", ".join(f"{totals[d]:.3f} {d}" for d in ("gpu", "cpu") if d in totals)
        + f" | {totals['prompt']:,.0f} | {totals['generated']:,.0f} | {totals['trained']:,.0f} | "
        f"{reused(totals)} | {totals['saved']:.3f}"
    )
    if gpu_hour_price is not None:
        lines.append(
            f"\n{totals.get('gpu', 0.0):.2f} GPU-hours at {gpu_hour_price:g} per GPU-hour: "
            f"{totals.get('gpu', 0.0) * gpu_hour_price:,.2f}"
            + (" (CPU core-hours not priced)" if "cpu" in totals else "")
        )
    lines += ["", against_plan([c for c in cells if c.name in measured], measured)]
    return "\n".join(lines)


REUSE_KEYS = ("cost/chunks_resumed", "cost/generations_reused", "cost/verdicts_reused", "cost/checkpoint_from_cache")


def against_plan(cells: List[CellResult], measured: Dict[str, Dict]) -> str:
    """The plan's figures (upper bounds on tokens, its GPU-hour estimate) for each cell's pinned config,
    beside what the cell's finished rounds measured; a share of the bound where one is set."""
    lines = [
        "Predicted by the plan (python launch.py ... --plan; its bounds cover all the cell's rounds) against measured:",
        "",
        "cell | rounds run/planned | generated tokens: measured / at most | trained tokens: measured / at most | "
        "GPU-h: measured / estimated",
        "--- | --- | --- | --- | ---",
    ]
    for cell in cells:
        m = measured[cell.name]
        try:
            f = predicted(typed(cell.config))
        except Exception as e:  # a config the plan cannot read (an older tpt's): say so, keep the rest
            lines.append(
                f"{cell.name} | {m['rounds']}/{cell.rounds} | plan unavailable: {str(e).splitlines()[0][:80]} | |"
            )
            continue

        def share(value, bound) -> str:
            return f"{value:,.0f} / {bound:,.0f} ({value / bound:.0%})" if bound else f"{value:,.0f} / -"

        gpu = f"{m['gpu']:.2f} / {f.get('gpu_hours', 0):.2f}" if m["device"] == "gpu" else "- (CPU run)"
        lines.append(
            f"{cell.name} | {m['rounds']}/{cell.rounds} | {share(m['generated'], f.get('generated_tokens_at_most'))} | "
            f"{share(m['trained'], f.get('trained_tokens_at_most'))} | {gpu}"
        )
    return "\n".join(lines)


def report(root: Path, compare_pair: Optional[List[str]] = None) -> List[Dict]:
    root = Path(root)
    cells = load_cells(root)
    rows = table(cells, root)
    markdown = to_markdown(rows)
    write_text_atomic(root / "report.md", markdown + "\n")
    write_text_atomic(root / "report.csv", to_csv(rows, COLUMNS))
    plots = plot(rows, root) + plot_reasoning(cells, root)
    missing = sum(r["status"] == "missing" for r in rows)
    print(markdown)
    unisolated = [c.name for c in cells if isolation_of(c) == "none"]
    if unisolated:
        print(
            "\nPrograms under test ran WITHOUT the sandbox's isolation (task.code.isolation=none) in: "
            + ", ".join(unisolated)
        )
    leaks = contamination_lines(cells)
    if leaks:
        print(
            "\nContamination (overlap with the eval questions; contamination.json names each pair):\n"
            + "\n".join(leaks)
        )
    print(
        f"\n{len(cells)} cell(s), {len(rows)} row(s), {missing} missing; wrote report.md, report.csv, "
        + ", ".join(p.name for p in plots)
        + f" in {root}"
    )
    if compare_pair:
        print("\n" + compare(cells, root, *compare_pair))
    return rows


def isolation_of(cell: CellResult) -> Optional[str]:
    """A code cell's task.code.isolation as its preflight recorded it (None for math cells and older runs)."""
    path = cell.path / "preflight.json"
    sandbox = read_json(path).get("sandbox") if path.is_file() else None
    return sandbox.get("isolation") if sandbox else None


def contamination_lines(cells: List[CellResult]) -> List[str]:
    """Per cell that has any: how many train questions (and solutions, per round) overlap how many eval
    questions, and the first eval ids (the run's and each round's contamination.json)."""
    lines = []
    for cell in cells:
        found = []
        files = [("questions", cell.path / "contamination.json")] + [
            (f"round {r} solutions", cell.path / f"round_{r}" / "prune" / "contamination.json")
            for r in sorted(cell.metrics)
            if r
        ]
        for what, path in files:
            if path.is_file():
                c = read_json(path)
                count = c.get("overlapping_train", c.get("overlapping_examples", 0))
                if count:
                    ids = c["overlapping_eval_ids"]
                    found.append(
                        f"{what}: {count} share {describe(c.get('rule', 'ngram'), c['ngram'])} with {len(ids)} eval "
                        "questions "
                        f"({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
                    )
        if found:
            lines.append(f"- {cell.name}: " + "; ".join(found))
    return lines


def report_cost(root: Path, gpu_hour_price: Optional[float]) -> str:
    text = cost(load_cells(Path(root)), gpu_hour_price)
    write_text_atomic(Path(root) / "cost.md", text + "\n")
    return text


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m tpt.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("root", type=Path, help="a sweep directory or outputs/")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two cells (or <cell>@<round>) to compare")
    ap.add_argument(
        "--paper",
        choices=sorted(TABLES),
        help="instead: that table of the paper beside ours "
        "(cells matched by `paper_row` in run_config.yaml; see tpt/paper_report.py)",
    )
    ap.add_argument(
        "--disagreements",
        nargs="?",
        type=int,
        const=3,
        metavar="N",
        help="instead: where the answer rule and math-verify disagree, N examples of each kind (3)",
    )
    ap.add_argument("--cost", action="store_true", help="instead: what each cell and the sweep cost (cost.md)")
    ap.add_argument("--gpu-hour-price", type=float, help="with --cost: a price per GPU-hour to total")
    args = ap.parse_args(argv)
    if args.cost:
        print(report_cost(args.root, args.gpu_hour_price))
    elif args.disagreements is not None:
        print(disagreements(args.root, args.disagreements))
    elif args.paper:
        paper_report(args.root, args.paper)
    else:
        report(args.root, args.compare)


if __name__ == "__main__":
    main(sys.argv[1:])
