"""Stage directories with atomic completion, so an interrupted run resumes where it stopped.

A stage writes into `<round>/.<stage>.partial/`, finishes with a DONE marker, and the folder is
renamed to `<round>/<stage>/` in one step. A folder named `<stage>` therefore always holds a
finished stage; a leftover `.partial` folder is an interrupted one and is started over.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from tpt.io import write_json

DONE = "DONE.json"


class Stage:
    def __init__(self, run_dir: Path, round_idx: int, name: str):
        self.round = round_idx
        self.name = name
        self.dir = Path(run_dir) / f"round_{round_idx}" / name
        self.partial = self.dir.with_name(f".{name}.partial")

    @property
    def done(self) -> bool:
        return (self.dir / DONE).is_file()

    @contextmanager
    def writing(self):
        """Yields the partial folder to write into; publishes it only if the body succeeds."""
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        started = time.time()
        yield self.partial
        write_json(self.partial / DONE, {"stage": self.name, "round": self.round,
                                          "seconds": round(time.time() - started, 2)})
        if self.dir.exists():  # a finished stage is never overwritten: only a stale, unmarked one
            shutil.rmtree(self.dir)
        self.partial.rename(self.dir)

    def __repr__(self) -> str:
        return f"round {self.round} {self.name}"
