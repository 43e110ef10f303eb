"""Formatting shared by the benchmarks in this folder (each puts the folder on sys.path by being run from it)."""

from __future__ import annotations

import resource
import statistics
from typing import Sequence, Tuple


def mean_sd(values: Sequence[float], fmt: str) -> str:
    """`mean ± sd` of repeated measurements; the mean alone for a single one."""
    spread = f" ± {statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
    return f"{statistics.mean(values):{fmt}}{spread}"


def children_cpu_seconds() -> Tuple[float, float]:
    """(user, kernel) CPU seconds of this process's children that have ended and been waited for:
    read before and after a child's life, the difference is what it cost."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime
