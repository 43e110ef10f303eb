"""Think: a model writes n solutions to every train question (or the dataset's own solutions stand in
for them), each verified against the ground truth (tpt/stages/generation.py: in chunks, resumable).

When fewer examples can be drawn than data.size asks for, `data.shortfall=resample` samples the
questions without a kept sample again, in further batches of think.n (`resample`).

Writes `round_<i>/think/samples.jsonl` (`SampleRow`s), `prompts.jsonl` (`PromptRow`s: the exact
text each question's prompt was, chat template included), `stats.json` (batches drawn, samples) and
`cost.json` (tpt.stages.sampling.stage_cost, all batches together).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tpt.cell import Cell
from tpt.io import write_json, write_jsonl
from tpt.logs import SCREEN
from tpt.pruning import kept_per_question, rule_of
from tpt.stages.generation import Job, SampleRow, human_samples
from tpt.stages.sampling import add_costs, sample

log = logging.getLogger(__name__)


def job(cell: Cell, i: int) -> Optional[Job]:
    """What round i's think generates: M_{i-1}'s samples, or the teacher's; None when the cell's
    source generates nothing (its samples are the human solutions)."""
    thinker = cell.source.thinker
    if thinker is None:
        return None
    if thinker == "teacher":
        return Job("think", i, cell.teacher, "train", f"round {i} think (teacher)", thinker)
    return Job("think", i, cell.models.model(i - 1), "train", f"round {i} think", thinker)


def resample(cell: Cell, work: Job, rows: List[SampleRow], cost: Dict) -> Tuple[List[SampleRow], int, Dict]:
    """data.shortfall=resample: while fewer examples can be drawn than data.size asks for, draw
    think.n more samples for the questions short of data.per_question kept ones, at most
    data.resample_batches times. Returns the rows, the batches drawn in all (1: no resampling) and
    `cost` with theirs added."""
    data, n = cell.cfg.data, cell.cfg.think.n
    wanted, _ = cell.source.sizes(cell.cfg)
    batch = 0
    while batch < data.resample_batches:
        kept = kept_per_question(rule_of(cell.cfg.pruning), rows)
        available = sum(min(k, data.per_question) for k in kept.values())
        short = tuple(p.id for p in cell.data.train if kept.get(p.id, 0) < data.per_question)
        if available >= wanted or not short:
            break
        batch += 1
        log.info(
            "%s: %d examples available, data.size asks for %d: %d more samples for each of the %d "
            "questions short of one (batch %d of at most %d)",
            work.desc,
            available,
            wanted,
            n,
            len(short),
            batch,
            data.resample_batches,
            extra=SCREEN,
        )
        more, _, spent = sample(cell, replace(work, batch=batch, only=short, desc=f"{work.desc}, resample {batch}"))
        rows = rows + [{**r, "sample": r["sample"] + batch * n} for r in more]
        cost = add_costs(cost, spent)
    return rows, batch + 1, cost


def run(cell: Cell, i: int, out: Path) -> None:
    work = job(cell, i)
    if work is None:  # nothing is generated, so no prompt is sent
        write_jsonl(out / "samples.jsonl", human_samples(cell))
        return
    rows, prompts, cost = sample(cell, work)
    batches = 1
    if cell.cfg.data.shortfall == "resample":
        rows, batches, cost = resample(cell, work, rows, cost)
    rows.sort(key=lambda r: (order_of(cell)[r["qid"]], r["sample"]))  # each question's samples together
    write_jsonl(out / "samples.jsonl", rows)
    write_jsonl(out / "prompts.jsonl", prompts)
    write_json(out / "stats.json", {"batches": batches, "samples": len(rows)})
    write_json(out / "cost.json", cost)


def order_of(cell: Cell) -> Dict[str, int]:
    return {p.id: k for k, p in enumerate(cell.data.train)}
