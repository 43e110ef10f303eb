"""What every task provides: problems with a worked reference solution and a gold answer."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import List

from tpt.verify.math import gold_answer


class DataError(ValueError):
    """A malformed problem file or row; the message names the file (or hub split) and line."""


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    solution: str  # human worked solution ending in `#### N`
    answer: str  # normalised gold number


@dataclass(frozen=True)
class TaskData:
    train: List[Problem]  # questions the model thinks about each round
    eval: List[Problem]  # the fixed held-out subset
    few_shot: List[Problem]  # worked examples shown in the prompt (removed from train)


_CALCULATOR = re.compile(r"<<[^>]*>>")


def strip_calculator_annotations(solution: str) -> str:
    """GSM8K solutions carry `<<48/2=24>>` calculator calls; prompts and training text drop them."""
    return _CALCULATOR.sub("", solution)


def make_problem(pid: str, question: object, solution: object, where: str) -> Problem:
    """Validate one raw row; `where` names it in errors (file:line or hub split/row)."""
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' must be a non-empty string")
    if not isinstance(solution, str):
        raise DataError(f"{where}: field 'answer' must be a string")
    if "####" not in solution:
        raise DataError(f"{where}: gold answer has no '#### <number>' line: {solution[-80:]!r}")
    answer = gold_answer(solution)
    if answer is None:
        raise DataError(f"{where}: the text after '####' is not a number: {solution[-80:]!r}")
    return Problem(id=pid, question=question.strip(), solution=solution.strip(), answer=answer)


def split_task(train: List[Problem], test: List[Problem], cfg) -> TaskData:
    """Fixed, seeded choices: the eval subset, the few-shot examples and an optional train cap."""
    if len(test) == 0 or len(train) == 0:
        raise DataError(f"task {cfg.name!r} has an empty split (train={len(train)}, test={len(test)})")
    eval_idx = sorted(random.Random(cfg.eval_seed).sample(range(len(test)), min(cfg.eval_questions, len(test))))
    rng = random.Random(cfg.eval_seed + 1)
    order = list(range(len(train)))
    rng.shuffle(order)
    shots = [train[i] for i in order[: cfg.few_shot]]
    rest = order[cfg.few_shot :]
    if cfg.train_questions is not None:
        rest = rest[: cfg.train_questions]
    return TaskData(
        train=[train[i] for i in sorted(rest)],
        eval=[test[i] for i in eval_idx],
        few_shot=shots,
    )
