"""Prune: keep verified samples, one unique sample per question, then a seeded draw of data_size.

`gt` keeps samples the verifier judged correct (math: the strict answer matches; code: the
program passes every test); `soft` keeps programs that pass at least one test (code tasks);
`none` keeps every sample.
"""
from __future__ import annotations

import logging
import random
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

log = logging.getLogger(__name__)

STRATEGIES = ("gt", "soft", "none")


def _keeps(sample: dict, strategy: str) -> bool:
    if strategy == "gt":
        return bool(sample["correct"])
    if strategy == "soft":
        return bool(sample.get("passed_some", False))
    if strategy == "none":
        return True
    raise ValueError(f"unknown pruning strategy {strategy!r}; known: {STRATEGIES}")


def prune(samples: Sequence[dict], strategy: str, size: int, seed: int) -> Tuple[List[dict], Dict]:
    """Samples carry `qid`, `completion` and `correct`. Returns the kept records and stats."""
    rng = random.Random(seed)
    by_question: "OrderedDict[str, List[dict]]" = OrderedDict()
    for s in samples:
        by_question.setdefault(s["qid"], []).append(s)

    one_per_question = []
    for qid, group in by_question.items():
        kept = [s for s in group if _keeps(s, strategy)]
        unique = list({s["completion"].strip(): s for s in kept}.values())
        if unique:
            one_per_question.append(rng.choice(unique))

    available = len(one_per_question)
    if available < size:
        log.warning("prune: only %d examples available, fewer than data.size=%d; using all of them",
                    available, size)
        chosen = one_per_question
    else:
        chosen = sorted(rng.sample(one_per_question, size), key=lambda s: s["qid"])
    stats = {
        "strategy": strategy,
        "samples": len(samples),
        "correct_samples": sum(bool(s["correct"]) for s in samples),
        "questions": len(by_question),
        "questions_with_correct": sum(any(s["correct"] for s in g) for g in by_question.values()),
        "kept_samples": sum(_keeps(s, strategy) for s in samples),
        "available": available,
        "requested_size": size,
        "size": len(chosen),
    }
    return chosen, stats
