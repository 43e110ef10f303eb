"""Verifiers: whether a completion is correct against the ground truth, per task kind.

Each kind (`KINDS`) has an answer format — when generation may stop, and where a completion is
cut, always agreeing with what the verifier judges — and a verifier returning one verdict dict per
completion with at least `pred`, `correct`, `lenient_pred` and `lenient_correct`: math
(`verify.math`: by the task's answer rule, lm-eval's strict `#### N` plus its flexible last number by
default; `\\boxed{}` judged by math-verify in `verify.symbolic` for the `math` rule) and code
(`verify.code`, the first python block run on the tests).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from tpt.verify import code, math
from tpt.verify.symbolic import SymbolicJudge

KINDS = ("math", "code")


@dataclass(frozen=True)
class AnswerFormat:
    done: Callable[[str], bool]  # the completion is finished: generation stops
    truncate: Callable[[str], str]  # cut what was generated past the end


@functools.lru_cache(maxsize=None)
def answer_format(kind: str, answer: str = "lm_eval") -> AnswerFormat:
    """`answer`: a math task's answer id (`answer_of`); unused for code."""
    if kind == "code":
        return AnswerFormat(code.code_block_done, code.truncate_after_code)
    return AnswerFormat(math.rule_done(answer), math.rule_truncate(answer))


def answer_of(task_cfg) -> str:
    """The answer id of a task config (tpt.verify.math.answer_id): what the sampling's stop rule and the
    verdicts depend on (`task.answer`, `task.strict_match`); code tasks have none of their own."""
    return math.answer_id(task_cfg.get("answer", "hash"), task_cfg.get("strict_match", "lm_eval"))


class MathVerifier:
    """Judges by the task's answer rule, and every sample a second time by math-verify on the whole
    completion (`second_correct`: reported beside the rule's verdict, never instead of it; None where
    math-verify did not finish in time)."""

    def __init__(self, answer: str = "lm_eval"):
        self.answer = answer
        self.symbolic = SymbolicJudge() if answer == "math" else None
        self.second = SymbolicJudge()

    def verify(self, pairs: Sequence[tuple], desc: str = "verify", reused: Optional[List[float]] = None) -> List[dict]:
        """Verdicts in order (`reused`: as CodeVerifier's; math verdicts are not cached)."""
        verdicts = [math.check_rule(text, p.answer, self.answer, self.symbolic) for p, text in pairs]
        for verdict, (p, text) in zip(verdicts, pairs):
            verdict["second_correct"] = self.second(str(p.answer), text, whole=True)
        return verdicts


def make_verifier(kind: str, task_cfg, cache=None):
    """The verifier of a task kind, set up from the task config (its answer rule, `task.code`).
    `cache`: where code verdicts are kept (tpt.cache.KeyedStore); math is judged in microseconds
    (math-verify in milliseconds)."""
    return code.CodeVerifier(task_cfg.code, cache) if kind == "code" else MathVerifier(answer_of(task_cfg))
