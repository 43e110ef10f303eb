"""Verifiers: decide whether a completion is correct against the ground truth.

Each task kind has an answer format (when generation may stop, and where a completion is cut)
and a verifier returning one verdict dict per completion with at least `pred`, `correct`,
`lenient_pred` and `lenient_correct`:
- math (`verify.math`): the strict `#### N` answer, plus a lenient last-number check;
- code (`verify.code`): the first python block, run on the problem's tests in the sandbox.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence

from tpt.config import CODE_TASKS
from tpt.verify import code, math


@dataclass(frozen=True)
class AnswerFormat:
    done: Callable[[str], bool]  # the completion is finished: generation stops
    truncate: Callable[[str], str]  # cut what was generated past the end


ANSWER_FORMATS = {
    "math": AnswerFormat(lambda text: bool(math.ANSWER_LINE_DONE.search(text)), math.truncate_after_answer),
    "code": AnswerFormat(code.code_block_done, code.truncate_after_code),
}


def task_kind(task_name: str) -> str:
    return "code" if task_name in CODE_TASKS else "math"


class MathVerifier:
    def verify(self, pairs: Sequence[tuple], desc: str = "verify") -> List[dict]:
        return [math.check(text, p.answer) for p, text in pairs]


def make_verifier(task_cfg):
    """The verifier for a task config (`task.code` configures the sandbox of code tasks)."""
    return code.CodeVerifier(task_cfg.code) if task_kind(task_cfg.name) == "code" else MathVerifier()
