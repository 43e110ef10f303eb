"""Verifiers: whether a completion is correct against the ground truth, per task kind.

Each kind (`KINDS`) has an answer format — when generation may stop, and where a completion is
cut, always agreeing with what the verifier judges — and a verifier returning one verdict dict per
completion with at least `pred`, `correct`, `lenient_pred` and `lenient_correct`: math
(`verify.math`, lm-eval's strict `#### N` plus its flexible last number) and code (`verify.code`,
the first python block run on the tests).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, List, Sequence

from tpt.verify import code, math

KINDS = ("math", "code")


@dataclass(frozen=True)
class AnswerFormat:
    done: Callable[[str], bool]  # the completion is finished: generation stops
    truncate: Callable[[str], str]  # cut what was generated past the end


@functools.lru_cache(maxsize=None)
def answer_format(kind: str, strict: str = "lm_eval") -> AnswerFormat:
    """`strict` is task.strict_match (math only)."""
    if kind == "code":
        return AnswerFormat(code.code_block_done, code.truncate_after_code)
    return AnswerFormat(functools.partial(math.answer_done, strict=strict),
                        functools.partial(math.truncate_after_answer, strict=strict))


class MathVerifier:
    def __init__(self, strict: str = "lm_eval"):
        self.strict = strict

    def verify(self, pairs: Sequence[tuple], desc: str = "verify") -> List[dict]:
        return [math.check(text, p.answer, self.strict) for p, text in pairs]


def make_verifier(kind: str, task_cfg, cache=None):
    """The verifier of a task kind, set up from the task config (`task.strict_match`, `task.code`).
    `cache`: where code verdicts are kept (tpt.cache.KeyedStore); math is judged in microseconds."""
    return code.CodeVerifier(task_cfg.code, cache) if kind == "code" else MathVerifier(task_cfg.strict_match)
