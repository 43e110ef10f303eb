"""Prune: the cell's pruning rule (tpt.pruning) chooses a round's examples from think's verified
samples: one unique kept sample per question, then a seeded draw of data.size. This module reads and
writes the stage's files.

With source=mixed, human solutions fill `source.human_size` of the examples on questions the self
samples did not take; with data.accumulate, earlier rounds' examples are kept too.
Writes `round_<i>/prune/train.jsonl` (`TrainRow`s), `stats.json` and `contamination.json` (the kept
solutions' n-gram overlap with the eval questions, tpt.contamination.check_solutions).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypedDict

from tpt import contamination
from tpt.cell import Cell
from tpt.config import ConfigError
from tpt.io import read_jsonl, write_json, write_jsonl
from tpt.logs import SCREEN
from tpt.metrics import length_quantiles
from tpt.pruning import GroundTruth, prune, rule_of
from tpt.stages.generation import cut_count, human_samples

log = logging.getLogger(__name__)


class TrainRow(TypedDict):
    """One training example (prune/train.jsonl): train fine-tunes on question -> completion."""

    qid: str
    question: str
    completion: str
    origin: str  # self | teacher | human
    round: int  # the round whose prune stage chose it (earlier ones with data.accumulate)


def run(cell: Cell, i: int, out: Path) -> None:
    cfg = cell.cfg
    samples = read_jsonl(cell.rundir.stage(i, "think") / "samples.jsonl")
    self_size, human_size = cell.source.sizes(cfg)
    seed = cfg.data.seed + i
    kept, stats = prune(samples, rule_of(cfg.pruning), self_size, seed, cfg.data.per_question)
    if stats["available"] < self_size and cfg.data.shortfall == "fail":
        raise ConfigError(
            f"round {i} prune: {stats['available']} examples available ({stats['questions_with_correct']} of "
            f"{stats['questions']} questions with a correct sample), data.size asks for {self_size}. "
            "data.shortfall=resample draws more samples for the questions without one; data.per_question=2 keeps "
            "more than one per question; data.shortfall=warn trains on what there is."
        )
    stats["cut_samples"] = cut_count(samples, cfg.think.max_new_tokens) if cell.source.thinker else 0
    if cell.source.thinker:
        stats.update(length_quantiles([s["n_tokens"] for s in samples], "think_tokens"))
    if human_size:  # human solutions on questions the think samples did not take
        taken = {s["qid"] for s in kept}
        # human solutions are the dataset's own: only those the ground truth accepts are used
        human, human_stats = prune(
            [r for r in human_samples(cell) if r["qid"] not in taken], GroundTruth(), human_size, seed
        )
        kept = kept + human
        stats.update(
            human_size=human_stats["size"],
            self_size=stats["size"],
            size=len(kept),
            requested_size=self_size + human_size,
        )
    records = [
        TrainRow(qid=s["qid"], question=s["question"], completion=s["completion"], origin=s["origin"], round=i)
        for s in kept
    ]
    if cfg.data.accumulate and i > 1:
        records = read_jsonl(cell.rundir.stage(i - 1, "prune") / "train.jsonl") + records
        stats["accumulated_size"] = len(records)
    log.info(
        "round %d prune: %d/%d samples correct, %d/%d questions with a correct one, kept %d",
        i,
        stats["correct_samples"],
        stats["samples"],
        stats["questions_with_correct"],
        stats["questions"],
        len(records),
        extra=SCREEN,
    )
    leaks = contamination.check_solutions(records, cell.data.eval, cfg.task.contamination_ngram, cfg.task.contamination)
    if leaks["overlapping_examples"]:
        log.warning(
            "round %d prune: %d of %d training solutions share %s with %d eval questions "
            "(round_%d/prune/contamination.json names them)",
            i,
            leaks["overlapping_examples"],
            len(records),
            contamination.describe(cfg.task.contamination, cfg.task.contamination_ngram),
            leaks["overlapping_eval"],
            i,
        )
    stats["solutions_overlapping_eval"] = leaks["overlapping_examples"]
    write_jsonl(out / "train.jsonl", records)
    write_json(out / "stats.json", stats)
    write_json(out / "contamination.json", leaks)
