"""Sampling metrics: Pass@1, unbiased Pass@k (Chen et al. 2021) and Correct@k."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n is correct,
    given c of the n are: 1 - C(n-c, k) / C(n, k), in the numerically stable product form."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarize(per_question: Sequence[Sequence[bool]], ks: Iterable[int]) -> dict:
    """Metrics over questions, each a list of per-sample verdicts in sampling order.

    pass@k: the unbiased estimator averaged over questions.
    correct@k: share of questions with at least one correct sample among their first k.
    """
    if not per_question:
        raise ValueError("no questions to summarise")
    out = {}
    for k in sorted(set(ks)):
        out[f"pass@{k}"] = float(np.mean([pass_at_k(len(v), sum(v), k) for v in per_question]))
        out[f"correct@{k}"] = float(np.mean([any(v[:k]) for v in per_question]))
    out["questions"] = len(per_question)
    out["samples"] = int(sum(len(v) for v in per_question))
    return out


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
        sims = [len(a & b) / len(a | b) if a | b else 1.0
                for i, a in enumerate(grams) for b in grams[i + 1:]]
        texts.append(1.0 - float(np.mean(sims)) if sims else 0.0)
    return {"distinct_answers": float(np.mean(answers)), "text_diversity": float(np.mean(texts))}
