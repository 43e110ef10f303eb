"""Eval: n samples of M_i per held-out question, verified, summarised as Pass@1, Pass@k, Correct@k,
the lenient and format rates, diversity and (code) the share of each verdict.

Writes `round_<i>/eval/samples.jsonl` (`SampleRow`s), `prompts.jsonl` (`PromptRow`s), `metrics.json`
and `cost.json` (tpt.stages.sampling.stage_cost).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

from tpt.cell import Cell
from tpt.io import write_json, write_jsonl
from tpt.metrics import diversity, length_quantiles, mean_and_se, summarize
from tpt.stages.generation import Job, SampleRow, cut_count
from tpt.stages.sampling import sample


def metrics(rows: Sequence[SampleRow], ks: Sequence[int], kind: str, max_new_tokens: int) -> Dict:
    """metrics.json: pass@k / correct@k per k with standard errors (`<name>_se`, tpt.metrics),
    lenient_pass@1, format_rate, cut_rate (share of samples stopped at the token limit), mean_tokens and
    tokens_p10/p50/p90, pass_curve (Pass@k for k = 1..n), distinct_answers, text_diversity; for math the
    second judge's figures (judge_agreement), for code verdict/<name> shares."""
    by_q: Dict[str, List[SampleRow]] = {}
    for r in rows:
        by_q.setdefault(r["qid"], []).append(r)
    out = summarize([[r["correct"] for r in g] for g in by_q.values()], ks)
    out["lenient_pass@1"], out["lenient_pass@1_se"] = mean_and_se(
        [sum(r["lenient_correct"] for r in g) / len(g) for g in by_q.values()]
    )
    out["format_rate"] = sum(r["pred"] is not None for r in rows) / len(rows)
    out["cut_rate"] = cut_count(rows, max_new_tokens) / len(rows)
    out["mean_tokens"] = sum(r["n_tokens"] for r in rows) / len(rows)
    out.update(length_quantiles([r["n_tokens"] for r in rows], "tokens"))
    n = min(len(g) for g in by_q.values())  # how the reasoning changed: Pass@k for every k the samples allow
    out["pass_curve"] = [
        summarize([[r["correct"] for r in g] for g in by_q.values()], [k])[f"pass@{k}"] for k in range(1, n + 1)
    ]
    out.update(diversity(list(by_q.values())))
    if kind == "math":
        out.update(judge_agreement(list(by_q.values())))
    if kind == "code":  # why programs failed: share of samples per verdict
        for verdict, count in sorted(Counter(r["verdict"] for r in rows).items()):
            out[f"verdict/{verdict}"] = count / len(rows)
    return out


def judge_agreement(by_question: Sequence[Sequence[SampleRow]]) -> Dict:
    """The second judge (math-verify on the whole completion, tpt.verify.MathVerifier) beside the task's
    answer rule: its Pass@1 with standard error, the share of samples both judge alike, and the counts
    of each disagreement (`judge_rule_only`: the rule says right, math-verify wrong; `judge_second_only`:
    the reverse) and of math-verify's timeouts (counted as wrong)."""
    rows = [r for g in by_question for r in g]
    if not rows or "second_correct" not in rows[0]:  # samples judged before the second judge existed
        return {}
    out = {}
    out["second_pass@1"], out["second_pass@1_se"] = mean_and_se(
        [sum(bool(r["second_correct"]) for r in g) / len(g) for g in by_question]
    )
    out["judge_agreement"] = sum(bool(r["correct"]) == bool(r["second_correct"]) for r in rows) / len(rows)
    out["judge_rule_only"] = sum(bool(r["correct"]) and not r["second_correct"] for r in rows)
    out["judge_second_only"] = sum(bool(r["second_correct"]) and not r["correct"] for r in rows)
    out["judge_timeouts"] = sum(r["second_correct"] is None for r in rows)
    return out


def job(cell: Cell, i: int) -> Job:
    """What round i's eval generates: M_i's samples of the held-out questions."""
    return Job("eval", i, cell.models.model(i), "eval", f"round {i} eval")


def run(cell: Cell, i: int, out: Path) -> None:
    rows, prompts, cost = sample(cell, job(cell, i))
    write_jsonl(out / "samples.jsonl", rows)
    write_jsonl(out / "prompts.jsonl", prompts)
    write_json(out / "cost.json", cost)
    write_json(out / "metrics.json", metrics(rows, cell.cfg.eval.k, cell.kind, cell.cfg.eval.max_new_tokens))
