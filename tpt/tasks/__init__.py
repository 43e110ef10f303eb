"""Tasks: problems + prompt + verifier. `load_task` returns the fixed train/eval/few-shot split."""
from __future__ import annotations

from tpt.tasks import arith, gsm8k
from tpt.tasks.base import DataError, Problem, TaskData, split_task, strip_calculator_annotations

_LOADERS = {"arith": arith.load, "gsm8k": gsm8k.load}


def load_task(cfg) -> TaskData:
    if cfg.name not in _LOADERS:
        raise DataError(f"unknown task {cfg.name!r}; known: {sorted(_LOADERS)}")
    train, test = _LOADERS[cfg.name](cfg)
    return split_task(train, test, cfg)


__all__ = ["DataError", "Problem", "TaskData", "load_task", "strip_calculator_annotations"]
