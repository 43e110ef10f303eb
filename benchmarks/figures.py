"""Formatting shared by the benchmarks in this folder (each puts the folder on sys.path by being run from it)."""
from __future__ import annotations

import statistics
from typing import Sequence


def mean_sd(values: Sequence[float], fmt: str) -> str:
    """`mean ± sd` of repeated measurements; the mean alone for a single one."""
    spread = f" ± {statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
    return f"{statistics.mean(values):{fmt}}{spread}"
