"""Prune: keep verified samples, one unique sample per question, then a seeded draw of data.size.

With source=mixed, human solutions fill `source.human_size` of the examples on questions the self
samples did not take; with data.accumulate, earlier rounds' examples are kept too.
Writes `round_<i>/prune/train.jsonl` (`TrainRow`s), `stats.json` and `contamination.json` (the kept
solutions' n-gram overlap with the eval questions, tpt.contamination.check_solutions).
"""
from __future__ import annotations

import logging
import random
from collections import OrderedDict
from pathlib import Path
from typing import List, Sequence, Tuple, TypedDict

from tpt import contamination
from tpt.cell import Cell
from tpt.config import ConfigError
from tpt.io import read_jsonl, write_json, write_jsonl
from tpt.metrics import length_quantiles
from tpt.pruning import STRATEGIES
from tpt.stages.generation import cut_count, human_samples

log = logging.getLogger(__name__)


class TrainRow(TypedDict):
    """One training example (prune/train.jsonl): train fine-tunes on question -> completion."""

    qid: str
    question: str
    completion: str
    origin: str  # self | teacher | human
    round: int  # the round whose prune stage chose it (earlier ones with data.accumulate)


class PruneStats(TypedDict, total=False):
    """prune/stats.json."""

    strategy: str
    samples: int  # think samples
    correct_samples: int
    questions: int
    questions_with_correct: int
    cut_samples: int  # think samples that stopped at think.max_new_tokens
    unique_correct: float  # distinct correct completions per question with a correct one
    kept_samples: int  # samples the strategy keeps
    available: int  # questions with a kept sample: at most one example each
    requested_size: int  # data.size
    size: int  # examples drawn this round
    human_size: int  # source=mixed: of which human solutions
    self_size: int
    accumulated_size: int  # data.accumulate: examples of this and earlier rounds


def mean_unique_correct(groups) -> float:
    """Distinct correct completions (by text) per question that has a correct one: how varied the
    solutions the next round may train on are."""
    counts = [len({s["completion"].strip() for s in g if s["correct"]}) for g in groups]
    solved = [c for c in counts if c]
    return sum(solved) / len(solved) if solved else 0.0


def prune(samples: Sequence[dict], strategy: str, size: int, seed: int,
          per_question: int = 1) -> Tuple[List[dict], PruneStats]:
    """Samples carry `qid`, `completion` and `correct`. Returns the kept samples and stats: up to
    `per_question` unique kept samples of each question, then a seeded draw of `size` of them."""
    keeps = STRATEGIES[strategy].keeps
    rng = random.Random(seed)
    by_question: "OrderedDict[str, List[dict]]" = OrderedDict()
    for s in samples:
        by_question.setdefault(s["qid"], []).append(s)

    one_per_question = []
    for group in by_question.values():
        unique = list({s["completion"].strip(): s for s in group if keeps(s)}.values())
        if unique:
            one_per_question += rng.sample(unique, min(per_question, len(unique)))

    available = len(one_per_question)
    if available < size:
        log.warning("prune: only %d examples available, fewer than data.size=%d; using all of them",
                    available, size)
        chosen = one_per_question
    else:
        chosen = sorted(rng.sample(one_per_question, size), key=lambda s: s["qid"])
    stats = PruneStats(
        strategy=strategy,
        samples=len(samples),
        correct_samples=sum(bool(s["correct"]) for s in samples),
        questions=len(by_question),
        questions_with_correct=sum(any(s["correct"] for s in g) for g in by_question.values()),
        unique_correct=mean_unique_correct(by_question.values()),
        kept_samples=sum(keeps(s) for s in samples),
        available=available,
        requested_size=size,
        size=len(chosen),
    )
    return chosen, stats


def run(cell: Cell, i: int, out: Path) -> None:
    cfg = cell.cfg
    samples = read_jsonl(cell.rundir.stage(i, "think") / "samples.jsonl")
    self_size, human_size = cell.source.sizes(cfg)
    seed = cfg.data.seed + i
    kept, stats = prune(samples, cfg.pruning.strategy, self_size, seed, cfg.data.per_question)
    if stats["available"] < self_size and cfg.data.shortfall == "fail":
        raise ConfigError(
            f"round {i} prune: {stats['available']} examples available ({stats['questions_with_correct']} of "
            f"{stats['questions']} questions with a correct sample), data.size asks for {self_size}. "
            "data.shortfall=resample draws more samples for the questions without one; data.per_question=2 keeps "
            "more than one per question; data.shortfall=warn trains on what there is.")
    stats["cut_samples"] = cut_count(samples, cfg.think.max_new_tokens) if cell.source.thinker else 0
    if cell.source.thinker:
        stats.update(length_quantiles([s["n_tokens"] for s in samples], "think_tokens"))
    if human_size:  # human solutions on questions the think samples did not take
        taken = {s["qid"] for s in kept}
        human, human_stats = prune([r for r in human_samples(cell) if r["qid"] not in taken], "gt", human_size, seed)
        kept = kept + human
        stats.update(human_size=human_stats["size"], self_size=stats["size"], size=len(kept),
                     requested_size=self_size + human_size)
    records = [TrainRow(qid=s["qid"], question=s["question"], completion=s["completion"], origin=s["origin"], round=i)
               for s in kept]
    if cfg.data.accumulate and i > 1:
        records = read_jsonl(cell.rundir.stage(i - 1, "prune") / "train.jsonl") + records
        stats["accumulated_size"] = len(records)
    log.info("round %d prune: %d/%d samples correct, %d/%d questions with a correct one, kept %d",
             i, stats["correct_samples"], stats["samples"], stats["questions_with_correct"],
             stats["questions"], len(records))
    leaks = contamination.check_solutions(records, cell.data.eval, cfg.task.contamination_ngram)
    if leaks["overlapping_examples"]:
        log.warning("round %d prune: %d of %d training solutions share a %d-gram with %d eval questions "
                    "(round_%d/prune/contamination.json names them)", i, leaks["overlapping_examples"], len(records),
                    leaks["ngram"], leaks["overlapping_eval"], i)
    stats["solutions_overlapping_eval"] = leaks["overlapping_examples"]
    write_jsonl(out / "train.jsonl", records)
    write_json(out / "stats.json", stats)
    write_json(out / "contamination.json", leaks)
