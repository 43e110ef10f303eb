"""What every task provides: problems with a worked reference solution and a gold answer (math) or
tests (code), the fixed train / eval / few-shot split, and the readers of local and hub files."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Type

from tpt.config import TaskConfig
from tpt.verify.math import answer_line, gold_of, has_answer_line, normalize_number


class DataError(ValueError):
    """A malformed problem file or row; the message names the file (or hub split) and line."""


@dataclass(frozen=True)
class StandIn:
    """A bundled task that runs on a CPU in place of every task of its kind in a miniature
    (`miniature=true`, tpt.miniature): its YAML's sampling, then these settings."""

    kind: str  # the task kind it stands in for (math | code)
    scale: float  # data.scale: the paper's data sizes times this (the paper's 2k of 7,473 GSM8K questions -> 24 of 96)
    settings: Tuple[str, ...] = ()  # Hydra overrides over the task's own YAML (`task.train_questions=96`)


def no_checks(task_cfg) -> None:
    """A task with no settings of its own to check."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything tpt knows of a task, in the task's own module (as its `TASK`): tpt.tasks finds it
    there. With its conf/task/<name>.yaml (which names `settings` as `/task_schema/<name>@task`),
    that is all a task is."""

    name: str  # task=<name>
    load: Callable[..., Tuple[List["Problem"], List["Problem"]]]  # task config -> (train, test) problems
    kind: str  # math | code (tpt.verify.KINDS): how answers end and how they are judged
    settings: Type[TaskConfig]  # the structured config of its settings
    check: Callable[..., None] = no_checks  # task config -> raise ConfigError for impossible values of its own keys
    bundled: bool = False  # generated in-process: offline, and quick enough for the plan to read
    hub_train_questions: Optional[int] = None  # its hub train split's size: the plan counts without a download
    prompt_tokens: int = 200  # a prompt's typical length with its chat template and worked examples (the plan)
    tests_per_problem: int = 0  # code: a problem's typical test count (the plan's verification time; an assumption)
    stands_in: Optional[StandIn] = None  # a bundled task that a miniature runs in place of its kind's tasks


CODE_TEST_SETS = ("public", "private", "generated")
# What an answer field must hold under each math answer rule (task.answer)
RULE_NEEDS = {
    "hash": "a number, or a solution ending in '#### <number>'",
    "boxed": "a number, or a solution with a \\boxed{<number>}",
    "last_number": "a number, or a solution ending in one",
    "math": "a LaTeX answer, or a solution with a \\boxed{}",
}  # CodeContests' three sets, in the order they run


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class
    input: str  # the program's stdin
    output: str  # expected stdout
    test_set: str = "public"  # one of CODE_TEST_SETS


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    solution: str  # math: a worked solution ending in `#### N`; code: a ```python block ("" if none)
    answer: str = ""  # math: the normalised gold number
    tests: Tuple[TestCase, ...] = ()  # code: run in this order
    time_limit_s: Optional[float] = None  # code: the problem's own limit, if it has one
    memory_mb: Optional[int] = None
    entry_point: Optional[str] = None  # code, LeetCode style: the method of `class Solution` to call


@dataclass(frozen=True)
class TaskData:
    train: List[Problem]  # questions the model thinks about each round
    eval: List[Problem]  # the fixed held-out subset
    few_shot: List[Problem]  # worked examples shown in the prompt (removed from train)
    contamination: Optional[dict] = None  # train/eval n-gram overlap (tpt.contamination.check), once checked


_CALCULATOR = re.compile(r"<<[^>]*>>")


def strip_calculator_annotations(solution: str) -> str:
    """GSM8K solutions carry `<<48/2=24>>` calculator calls; prompts and training text drop them."""
    return _CALCULATOR.sub("", solution)


def reference_text(problem: Problem, kind: str, keep_annotations: bool = False) -> str:
    """A problem's human solution as a completion (few-shot turns, `source=human`); `kind` is its task's."""
    if kind == "math" and not keep_annotations:
        return strip_calculator_annotations(problem.solution)
    return problem.solution


def fence(code: str) -> str:
    return f"```python\n{code.strip()}\n```" if code.strip() else ""


def make_code_problem(
    pid: str,
    question: object,
    tests: List[TestCase],
    where: str,
    solution: str = "",
    time_limit_s: Optional[float] = None,
    memory_mb: Optional[int] = None,
    entry_point: Optional[str] = None,
) -> Problem:
    """Validate one code problem; `solution` is plain Python source (fenced here) or empty."""
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: the problem statement must be a non-empty string")
    if not tests:
        raise DataError(f"{where}: no tests of the selected kinds (task.code.tests); a code problem needs at least one")
    for t in tests:
        if not isinstance(t.input, str) or not isinstance(t.output, str):
            raise DataError(f"{where}: test inputs and outputs must be strings")
    if time_limit_s is not None and time_limit_s <= 0:
        time_limit_s = None  # CodeContests marks a missing limit with 0
    return Problem(
        id=pid,
        question=question.strip(),
        solution=fence(solution),
        tests=tuple(tests),
        time_limit_s=time_limit_s,
        memory_mb=memory_mb or None,
        entry_point=entry_point or None,
    )


def make_problem(
    pid: str,
    question: object,
    answer: object,
    where: str,
    rule: str = "hash",
    solution: object = None,
    fields: Tuple[str, str, str] = ("question", "answer", "solution"),
) -> Problem:
    """Validate one raw math row; `where` names it in errors (file:line or hub split/row), `fields`
    the columns question, answer and solution came from. `answer` holds the gold answer under the
    rule (tpt.verify.math.RULES), bare or at the end of a worked solution (GSM8K's `#### N`);
    `solution`, if given, is the worked solution shown as a reference (else the answer's text).
    A reference without the rule's answer line gets one, so few-shot turns show the format."""
    q_field, a_field, s_field = fields
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field {q_field!r} must be a non-empty string (got {question!r:.80})")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)  # csv and parquet columns of numbers
    if not isinstance(answer, str) or not answer.strip():
        raise DataError(f"{where}: field {a_field!r} must be a non-empty string or number (got {answer!r:.80})")
    gold = gold_of(answer, rule)
    if gold is None:
        raise DataError(
            f"{where}: field {a_field!r} holds no answer under task.answer={rule} "
            f"({RULE_NEEDS[rule]}): {answer[-80:]!r}"
        )
    if solution is not None and not isinstance(solution, str):
        raise DataError(f"{where}: field {s_field!r} must be a string (got {type(solution).__name__})")
    reference = (solution if solution else answer).strip()
    if reference.strip("$ ") == gold or normalize_number(reference) == gold:
        reference = answer_line(gold, rule)  # a bare answer: the reference states it in the rule's form
    elif not has_answer_line(reference, rule):
        reference = f"{reference}\n{answer_line(gold, rule)}"
    return Problem(id=pid, question=question.strip(), solution=reference, answer=gold)


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


def iter_jsonl(path: Path) -> Iterator[Tuple[str, dict]]:
    """(file:line, row) for each non-blank line; a line that is not a JSON object is a DataError."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object")
            yield where, row


def split_rows(
    cfg, split: str, local_rows: Callable[[Path, str], Iterator[Tuple[str, dict]]], local_layout: str
) -> Iterator[Tuple[str, dict]]:
    """(where, row) for each row of one split: from the folder task.path (read by `local_rows`), or
    from the hub dataset task.hub_id. `local_layout` tells the user what the folder must hold."""
    if cfg.path:
        root = Path(cfg.path).expanduser()
        if not root.is_dir():
            raise DataError(f"task.path={cfg.path!r} is not a directory")
        return local_rows(root, split)
    if cfg.hub_id:
        ds = load_hub_split(cfg.hub_id, cfg.hub_config, split, f"Set task.path to {local_layout} to run offline.")
        return ((f"{cfg.hub_id}[{split}] row {i}", row) for i, row in enumerate(ds))
    raise DataError(f"task {cfg.name} needs task.path ({local_layout}) or task.hub_id")


def load_hub_split(hub_id: str, hub_config: Optional[str], split: str, local_hint: str):
    """A hub dataset split (datasets.load_dataset); failures name the dataset and the offline way."""
    import datasets  # imported here: slow, and only the hub path needs it

    try:
        return datasets.load_dataset(hub_id, hub_config, split=split)
    except Exception as e:  # offline, unknown id, no access: say which dataset
        raise DataError(
            f"could not load dataset {hub_id!r} (config {hub_config!r}, split {split!r}) from the "
            f"Hugging Face hub: {e}. {local_hint}"
        ) from e
