"""Sampling metrics with their uncertainty: Pass@1, unbiased Pass@k (Chen et al. 2021), Correct@k,
diversity, and paired differences between two runs on the same questions.

Every figure is a mean over questions of a per-question estimate, so its standard error is the
standard deviation of those estimates over sqrt(questions): it counts both which questions were
drawn and the sampling noise within each (a bootstrap over questions gives the same, see
tests/test_metrics.py). Correct@k is a count of questions, as the paper reports it (415 of 500).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Mapping, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n is correct,
    given c of the n are: 1 - C(n-c, k) / C(n, k), in the numerically stable product form."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean over questions and its standard error (0 for a single question)."""
    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def per_question_pass(per_question: Sequence[Sequence[bool]], k: int) -> list[float]:
    return [pass_at_k(len(v), sum(map(bool, v)), k) for v in per_question]


def summarize(per_question: Sequence[Sequence[bool]], ks: Iterable[int]) -> dict:
    """Metrics over questions, each a list of per-sample verdicts.

    pass@k, pass@k_se: the unbiased estimator averaged over questions, and its standard error.
    correct@k, correct@k_se: questions with at least one correct sample among k, expected over
    which k of the n samples are drawn (for k = n: exactly the questions with any correct sample).
    """
    if not per_question:
        raise ValueError("no questions to summarise")
    out = {}
    for k in sorted(set(ks)):
        mean, se = mean_and_se(per_question_pass(per_question, k))
        out[f"pass@{k}"], out[f"pass@{k}_se"] = mean, se
        out[f"correct@{k}"], out[f"correct@{k}_se"] = mean * len(per_question), se * len(per_question)
    out["questions"] = len(per_question)
    out["samples"] = int(sum(len(v) for v in per_question))
    return out


def paired_difference(a: Mapping[str, float], b: Mapping[str, float]) -> Dict[str, float]:
    """a - b on the questions both were measured on (per-question values keyed by question id):
    the mean difference, its paired standard error, and z = diff / se."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two runs share no question: a paired comparison needs the same questions")
    diff, se = mean_and_se([a[q] - b[q] for q in common])
    return {
        "diff": diff,
        "se": se,
        "z": diff / se if se > 0 else (0.0 if diff == 0 else math.inf),
        "questions": len(common),
    }


def _bigrams(text: str) -> set:
    words = text.split()
    return set(zip(words, words[1:])) if len(words) > 1 else set(words)


def diversity(per_question_samples: Sequence[Sequence[dict]]) -> dict:
    """The paper's mode-collapse question, per question then averaged.

    distinct_answers: distinct final answers among a question's samples (no answer counts as one).
    text_diversity: 1 - mean pairwise Jaccard similarity of the samples' word bigrams
    (0 = every sample the same text, 1 = no bigram shared).
    """
    answers, texts = [], []
    for samples in per_question_samples:
        answers.append(len({s.get("pred") for s in samples}))
        grams = [_bigrams(s["completion"]) for s in samples]
        sims = [len(a & b) / len(a | b) if a | b else 1.0 for i, a in enumerate(grams) for b in grams[i + 1 :]]
        texts.append(1.0 - float(np.mean(sims)) if sims else 0.0)
    out = {}
    for name, values in (("distinct_answers", answers), ("text_diversity", texts)):
        out[name], out[f"{name}_se"] = mean_and_se(values)
    return out


def length_quantiles(lengths: Sequence[int], name: str) -> dict:
    """`<name>_p10`, `_p50`, `_p90`: the spread of completion lengths in tokens."""
    return {f"{name}_p{q}": float(np.percentile(lengths, q)) for q in (10, 50, 90)} if len(lengths) else {}
