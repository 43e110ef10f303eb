"""Tasks: the one registry of task names. A task is problems (a loader), a kind (math | code: how
answers end and how they are judged), its own settings (a structured config of tpt.config), and its
scale, which lives in conf/task/<name>.yaml."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Tuple, Type

from tpt.config import (ArithTaskConfig, CodeTaskConfig, JsonlTaskConfig, Math500TaskConfig, MathTaskConfig,
                        MiniCodeTaskConfig, TaskConfig)
from tpt.tasks import arith, codecontests, gsm8k, jsonl, leetcode, math500, minicode
from tpt.tasks.base import CODE_TEST_SETS, DataError, Problem, TaskData, reference_text, split_task


@dataclass(frozen=True)
class TaskSpec:
    load: Callable[..., Tuple[List[Problem], List[Problem]]]  # task config -> (train, test) problems
    kind: str  # math | code (tpt.verify.KINDS)
    settings: Type[TaskConfig]  # the structured config of its settings (its conf/task file asks for it)


TASKS = {
    "arith": TaskSpec(arith.load, "math", ArithTaskConfig),
    "gsm8k": TaskSpec(gsm8k.load, "math", MathTaskConfig),
    "codecontests": TaskSpec(codecontests.load, "code", CodeTaskConfig),
    "leetcode": TaskSpec(leetcode.load, "code", CodeTaskConfig),
    "minicode": TaskSpec(minicode.load, "code", MiniCodeTaskConfig),
    "jsonl": TaskSpec(jsonl.load, "math", JsonlTaskConfig),
    "math500": TaskSpec(math500.load, "math", Math500TaskConfig),
}


def task_kind(name: str) -> str:
    return TASKS[name].kind


def load_task(cfg) -> TaskData:
    if cfg.name not in TASKS:
        raise DataError(f"unknown task {cfg.name!r}; known: {sorted(TASKS)}")
    train, test = TASKS[cfg.name].load(cfg)
    return split_task(train, test, cfg)


__all__ = ["CODE_TEST_SETS", "DataError", "Problem", "TASKS", "TaskData", "TaskSpec", "load_task", "reference_text", "task_kind"]
