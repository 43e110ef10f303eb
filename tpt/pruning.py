"""Pruning strategies (`pruning=`): which verified think samples a round may train on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple


@dataclass(frozen=True)
class Strategy:
    keeps: Callable[[dict], bool]  # sample row -> kept
    kinds: Tuple[str, ...]  # task kinds it applies to
    needs: str = ""  # why it refuses other kinds


STRATEGIES = {
    "gt": Strategy(lambda s: bool(s["correct"]), ("math", "code")),  # math: the answer matches; code: every test passes
    "soft": Strategy(lambda s: bool(s.get("passed_some", False)), ("code",),
                     "soft keeps programs that pass at least one test: it needs a code task"),
    "none": Strategy(lambda s: True, ("math", "code")),
}
