"""Tasks: the one registry of task names. A task is one module of this package that defines `TASK`,
a `TaskSpec` (tpt/tasks/base.py: its loader, kind, settings schema, checks, plan facts and miniature
role), plus its conf/task/<name>.yaml; every module here is searched for one, so adding a task
touches nothing else. `register` adds a task defined elsewhere (a test, a lab's own package)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict

from tpt.tasks.base import CODE_TEST_SETS, DataError, Problem, StandIn, TaskData, TaskSpec, reference_text, split_task

TASKS: Dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in TASKS and TASKS[spec.name] is not spec:
        raise ValueError(f"two tasks are named {spec.name!r}")
    TASKS[spec.name] = spec
    return spec


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    _spec = getattr(importlib.import_module(f"{__name__}.{_module}"), "TASK", None)
    if isinstance(_spec, TaskSpec):
        register(_spec)


def task_kind(name: str) -> str:
    return TASKS[name].kind


def stand_in(kind: str) -> TaskSpec:
    """The bundled task a miniature runs in place of tasks of this kind."""
    found = [t for t in TASKS.values() if t.stands_in is not None and t.stands_in.kind == kind]
    if len(found) != 1:
        raise ValueError(f"{len(found)} bundled tasks stand in for {kind} tasks: {[t.name for t in found]}")
    return found[0]


def load_task(cfg) -> TaskData:
    if cfg.name not in TASKS:
        raise DataError(f"unknown task {cfg.name!r}; known: {sorted(TASKS)}")
    train, test = TASKS[cfg.name].load(cfg)
    return split_task(train, test, cfg)


__all__ = [
    "CODE_TEST_SETS",
    "DataError",
    "Problem",
    "StandIn",
    "TASKS",
    "TaskData",
    "TaskSpec",
    "load_task",
    "reference_text",
    "register",
    "stand_in",
    "task_kind",
]
