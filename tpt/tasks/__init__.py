"""Tasks: problems + prompt + verifier. `load_task` returns the fixed train/eval/few-shot split."""
from __future__ import annotations

from tpt.tasks import arith, codecontests, gsm8k, leetcode
from tpt.tasks.base import DataError, Problem, TaskData, reference_text, split_task

_LOADERS = {"arith": arith.load, "gsm8k": gsm8k.load, "codecontests": codecontests.load, "leetcode": leetcode.load}


def load_task(cfg) -> TaskData:
    if cfg.name not in _LOADERS:
        raise DataError(f"unknown task {cfg.name!r}; known: {sorted(_LOADERS)}")
    train, test = _LOADERS[cfg.name](cfg)
    return split_task(train, test, cfg)


__all__ = ["DataError", "Problem", "TaskData", "load_task", "reference_text"]
