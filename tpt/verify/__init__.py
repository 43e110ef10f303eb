"""Verifiers: whether a completion is correct against the ground truth, per task kind.

Each kind (`KINDS`) has an answer format — when generation may stop, and where a completion is
cut — and a verifier returning one verdict dict per completion with at least `pred`, `correct`,
`lenient_pred` and `lenient_correct`: math (`verify.math`, the strict `#### N` answer plus a
lenient last-number check) and code (`verify.code`, the first python block run on the tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence

from tpt.verify import code, math


@dataclass(frozen=True)
class Kind:
    done: Callable[[str], bool]  # the completion is finished: generation stops
    truncate: Callable[[str], str]  # cut what was generated past the end


KINDS = {
    "math": Kind(lambda text: bool(math.ANSWER_LINE_DONE.search(text)), math.truncate_after_answer),
    "code": Kind(code.code_block_done, code.truncate_after_code),
}


class MathVerifier:
    def verify(self, pairs: Sequence[tuple], desc: str = "verify") -> List[dict]:
        return [math.check(text, p.answer) for p, text in pairs]


def make_verifier(kind: str, code_cfg):
    """The verifier of a task kind (`code_cfg`, the task's `task.code`, configures the sandbox)."""
    return code.CodeVerifier(code_cfg) if kind == "code" else MathVerifier()
