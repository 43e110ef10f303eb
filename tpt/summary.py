"""One row per round for metrics.jsonl, W&B and the table a run prints at the end (summary.md)."""

from __future__ import annotations

from typing import Dict, Sequence

from tpt.io import read_json, read_jsonl
from tpt.rundir import DONE, ROUND_STAGES, RunDir


def round_cost(run: RunDir, i: int) -> Dict:
    """What round i cost: the wall seconds of each of its stages (cost/<stage>_s, as the run that made
    the stage measured them), its device-hours (GPUs, or CPU cores, times seconds), the tokens prompted
    and generated (think and eval, as given to and counted by the engine) and trained, the examples
    trained on, and what was reused instead of computed (chunks a killed attempt had finished,
    generations, code verdicts and the checkpoint from the caches) with the seconds computing them
    had taken (cost/saved_s)."""
    cost: Dict = {}
    device_seconds = 0.0
    for name in ROUND_STAGES:
        marker = run.stage(i, name) / DONE
        if marker.is_file():
            done = read_json(marker)
            cost[f"cost/{name}_s"] = done["seconds"]
            device_seconds += done.get("device_seconds", done["seconds"])
            cost["cost/device"] = done.get("device", "cpu")
    cost["cost/device_hours"] = device_seconds / 3600
    generation = [generation_cost(run, i, name) for name in ("think", "eval")]
    cost["cost/prompt_tokens"] = sum(g.get("prompt_tokens", 0) for g in generation)
    cost["cost/generated_tokens"] = sum(g["generated_tokens"] for g in generation)
    saved = sum(
        g.get(k, 0.0) for g in generation for k in ("chunks_resumed_saved_s", "generations_saved_s", "verdicts_saved_s")
    )
    for what in ("chunks_resumed", "generations_reused", "verdicts_reused"):
        cost[f"cost/{what}"] = sum(g.get(what, 0) for g in generation)
    if i > 0:
        train = read_json(run.stage(i, "train") / "result.json")
        cost["cost/trained_tokens"] = train.get("tokens") or 0
        cost["cost/trained_examples"] = train.get("examples", 0)
        cost["cost/checkpoint_from_cache"] = bool(train.get("from_cache"))
        if train.get("from_cache"):
            saved += train.get("seconds", 0.0)
    cost["cost/saved_s"] = round(saved, 3)
    return cost


def generation_cost(run: RunDir, i: int, stage: str) -> Dict:
    """A think or eval stage's cost.json (tpt.stages.sampling.stage_cost); for a stage without one (it
    generated nothing, or a tpt before cost accounting wrote it) the tokens counted from its samples."""
    folder = run.stage(i, stage)
    if (folder / "cost.json").is_file():
        return read_json(folder / "cost.json")
    samples = folder / "samples.jsonl"
    return {"generated_tokens": sum(s["n_tokens"] for s in read_jsonl(samples)) if samples.is_file() else 0}


def round_row(run: RunDir, i: int) -> Dict:
    """Round i's eval metrics, what its prune and train stages did, and what it cost."""
    row = {"round": i, **read_json(run.stage(i, "eval") / "metrics.json"), **round_cost(run, i)}
    if i > 0:
        stats = read_json(run.stage(i, "prune") / "stats.json")
        train = read_json(run.stage(i, "train") / "result.json")
        think = run.stage(i, "think") / "stats.json"
        row["think_batches"] = read_json(think)["batches"] if think.is_file() else 1  # >1: resampled
        row.update(
            {
                "data_size": stats.get("accumulated_size", stats["size"]) - train.get("too_long", 0),
                "data_requested": stats["requested_size"]
                + (stats.get("accumulated_size", stats["size"]) - stats["size"]),
                "think_correct": stats["correct_samples"],
                "think_samples": stats["samples"],
                "think_cut": stats.get("cut_samples", 0),
                "train_too_long": train.get("too_long", 0),
                "think_solve_rate": stats["questions_with_correct"] / max(stats["questions"], 1),
                "think_unique_correct": stats.get("unique_correct"),
                "train_solutions_overlap": stats.get("solutions_overlapping_eval"),  # n-gram leaks (prune/)
                **{k: v for k, v in stats.items() if k.startswith("think_tokens_")},
                "train_loss": train.get("train_loss"),
            }
        )
    return row


def with_se(row: Dict, key: str) -> str:
    """`0.453 ± 0.041`: a metric and its standard error over questions."""
    return f"{row[key]:.3f} ± {row[key + '_se']:.3f}" if key + "_se" in row else f"{row[key]:.3f}"


def count_of(row: Dict, key: str) -> str:
    """Correct@k as the paper gives it: questions of all (`415/500`; an expectation when k < n)."""
    value = row[key]
    return f"{value:.0f}/{row['questions']}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}/{row['questions']}"


def _rate(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def kept_data(row: Dict) -> str:
    """Examples trained on; `2000 → 412` when fewer were reached than data.size asked for."""
    if "data_size" not in row:
        return "-"
    asked = row.get("data_requested", row["data_size"])
    return str(row["data_size"]) if row["data_size"] >= asked else f"{asked} → {row['data_size']}"


def format_summary(rows: Sequence[Dict], ks: Sequence[int]) -> str:
    k = max(ks)
    head = [
        "round",
        "Pass@1",
        f"Pass@{k}",
        f"Correct@{k}",
        "lenient@1",
        "format",
        "cut",
        "answers/q",
        "diversity",
        "kept data",
        "train loss",
    ]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        loss = r.get("train_loss")
        lines.append(
            " | ".join(
                [
                    str(r["round"]),
                    with_se(r, "pass@1"),
                    with_se(r, f"pass@{k}"),
                    count_of(r, f"correct@{k}"),
                    f"{r['lenient_pass@1']:.3f}",
                    f"{r['format_rate']:.2f}",
                    _rate(r.get("cut_rate")),
                    f"{r['distinct_answers']:.2f}",
                    f"{r['text_diversity']:.2f}",
                    kept_data(r),
                    "-" if loss is None else f"{loss:.3f}",
                ]
            )
        )
    return "\n".join(lines)


def stage_seconds(row: Dict) -> float:
    """A round's wall seconds: its stages' `cost/<stage>_s` added up."""
    return sum(row.get(f"cost/{name}_s", 0.0) for name in ROUND_STAGES)


def reused(row: Dict) -> str:
    """What a round (or a cell's rounds added up) took from earlier work instead of computing it:
    `2 chunks, 3 gen, 1 verd, 1 ckpt` (chunks a killed attempt had finished, generations and code
    verdicts from the caches, checkpoints from the checkpoint cache)."""
    labels = (
        ("chunks_resumed", "chunks"),
        ("generations_reused", "gen"),
        ("verdicts_reused", "verd"),
        ("checkpoint_from_cache", "ckpt"),
    )
    return ", ".join(f"{int(row[f'cost/{key}'])} {label}" for key, label in labels if row.get(f"cost/{key}")) or "-"


def format_cost(rows: Sequence[Dict]) -> str:
    """summary.md's second table: what each round cost (tpt.summary.round_cost) and what reuse saved."""
    rows = [r for r in rows if "cost/device_hours" in r]
    if not rows:
        return ""
    device = rows[-1].get("cost/device", "cpu")
    head = ["round", "wall s", f"{device} h", "prompt tok", "generated tok", "trained tok", "reused", "saved s"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        lines.append(
            " | ".join(
                [
                    str(r["round"]),
                    f"{stage_seconds(r):.0f}",
                    f"{r['cost/device_hours']:.3f}",
                    f"{r.get('cost/prompt_tokens', 0):,}",
                    f"{r['cost/generated_tokens']:,}",
                    f"{r.get('cost/trained_tokens', 0):,.0f}",
                    reused(r),
                    f"{r.get('cost/saved_s', 0):.0f}",
                ]
            )
        )
    return "\n".join(lines)
