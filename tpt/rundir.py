"""A cell's run directory: one process at a time, bound to one config, stages published atomically.

A stage writes into `round_<i>/.<stage>.partial@<host>@<pid>/`, ends with a DONE marker that lists the
size and sha256 of every file it wrote, and the folder is renamed to `round_<i>/<stage>/` in one step,
unless another process published the stage first (first complete writer wins: docs/guarantees.md). A
folder named `<stage>` always holds a finished stage; a leftover `.partial*` folder is an interrupted
one, removed when the stage starts again. A finished stage is checked against its marker whenever a
run skips it; a damaged one is refused, naming the file and the command that redoes it.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from tpt.config import ConfigError
from tpt.io import (
    Damaged,
    damage,
    left_by_dead_process,
    manifest,
    publish_dir_once,
    read_json,
    unique_suffix,
    write_json,
    write_text_atomic,
)
from tpt.logs import SCREEN
from tpt.naming import pinned

log = logging.getLogger(__name__)

DONE = "DONE.json"
_HASHED: set = set()  # (file, bytes, mtime) this process hashed whole against a stage's marker


def _seen(path: Path, want: dict) -> tuple:
    return (str(path), want.get("bytes"), want.get("mtime_ns"))


ROUND_STAGES = ("think", "prune", "train", "eval")  # a round's stages in the order tpt.loop runs them


class RunDirBusy(RuntimeError):
    """Another tpt process is running the same cell (e.g. a sweep resubmitted while its jobs run)."""


class Stage:
    def __init__(self, run_dir: Path, round_idx: int, name: str):
        self.round = round_idx
        self.name = name
        self.dir = Path(run_dir) / f"round_{round_idx}" / name
        self.partial = self.dir.with_name(f".{name}.partial{unique_suffix()}")  # this process's
        self.chunks = self.dir.with_name(f".{name}.chunks")  # finished chunks of an unfinished stage

    @property
    def done(self) -> bool:
        return (self.dir / DONE).is_file()

    def __truediv__(self, filename: str) -> Path:
        """A file (or folder) of the finished stage, `run.stage(1, "prune") / "train.jsonl"`, for reading:
        checked whole against its DONE marker first (each file hashed once per process), so a damaged
        file is never used, whatever the quick check on resume let through."""
        self._verify(filename)
        return self.dir / filename

    def _marker_files(self) -> Dict[str, dict]:
        if not (self.dir / DONE).is_file():
            return {}
        return read_json(self.dir / DONE).get("files") or {}  # none: published by a tpt before checksums

    def _verify(self, name: str) -> None:
        files = {k: v for k, v in self._marker_files().items() if k == name or k.startswith(name + "/")}
        todo = {k: v for k, v in files.items() if _seen(self.dir / k, v) not in _HASHED}
        problems = damage(self.dir, todo)
        if problems:
            raise Damaged(
                f"{self} finished earlier but its files are damaged: {'; '.join(problems)}. tpt will not use "
                f"them; to redo it and every stage after it, run\n  {RunDir(self.dir.parents[1]).redo_command(self)}\n"
                f"then the same command again."
            )
        _HASHED.update(_seen(self.dir / k, v) for k, v in todo.items())

    def damage(self, full: bool = False) -> List[str]:
        """What differs between the finished stage's files and its DONE marker (nothing if whole). Quick by
        default: sizes, and contents only of files whose modification time is not the one published;
        `full` hashes every file."""
        try:
            files = self._marker_files()
        except Damaged as e:
            return [str(e)]
        return damage(self.dir, files, full=full)

    def drop(self, name: str) -> None:
        """Delete the folder `name` of the finished stage (train.keep=last's superseded weights), first
        from its marker's checksums, so the stage stays whole without it."""
        marker = read_json(self.dir / DONE)
        if "files" in marker:
            marker["files"] = {k: v for k, v in marker["files"].items() if not k.startswith(name + "/")}
            marker["dropped"] = sorted(set(marker.get("dropped", [])) | {name})
            write_json(self.dir / DONE, marker)
        shutil.rmtree(self.dir / name, ignore_errors=True)

    @contextlib.contextmanager
    def writing(self, devices: Tuple[str, int] = ("cpu", 1)):
        """Yields the partial folder to write into; publishes it only if the body succeeds. The marker
        records the stage's wall seconds and its device-seconds on `devices` (kind, count)."""
        for old in self.dir.parent.glob(f".{self.name}.partial*"):
            if old.name == f".{self.name}.partial" or left_by_dead_process(old):  # an older tpt's, or a killed run's
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        started = time.time()
        yield self.partial
        seconds = round(time.time() - started, 2)
        write_json(
            self.partial / DONE,
            {
                "stage": self.name,
                "round": self.round,
                "seconds": seconds,
                "device": devices[0],
                "devices": devices[1],
                "device_seconds": round(seconds * devices[1], 2),
                "files": manifest(self.partial),
            },
        )
        if self.dir.exists() and not self.done:  # a finished stage is never overwritten: only a stale, unmarked one
            shutil.rmtree(self.dir)
        if not publish_dir_once(self.partial, self.dir):
            log.warning("%s: another process published this stage first; keeping its files", self)

    def __repr__(self) -> str:
        return f"round {self.round} {self.name}"


class RunDir:
    def __init__(self, path: Path, devices: Tuple[str, int] = ("cpu", 1)):
        self.path = Path(path)
        self.devices = devices  # what the cell's stages run on (kind, count): their device-seconds

    def stage(self, round_idx: int, name: str) -> Stage:
        return Stage(self.path, round_idx, name)

    def run_stage(self, round_idx: int, name: str, body: Callable[[Path], None]) -> Stage:
        """Run `body(folder)` as a stage unless it finished earlier; it writes the stage's files."""
        stage = self.stage(round_idx, name)
        if stage.done:
            problems = stage.damage()
            if problems:
                raise Damaged(
                    f"{stage} finished earlier but its files are damaged: {'; '.join(problems)}. tpt will "
                    f"not use them; to redo it and every stage after it, run\n"
                    f"  {self.redo_command(stage)}\nthen the same command again."
                )
            log.info("%s: finished earlier, skipping", stage, extra=SCREEN)
        else:
            log.info("%s: starting", stage)
            with stage.writing(self.devices) as out:
                body(out)
        # Published: its chunks are in its files now (also cleared when a kill came between the two).
        shutil.rmtree(stage.chunks, ignore_errors=True)
        return stage

    def redo_command(self, stage: Stage) -> str:
        """The shell command that removes `stage` and every published stage after it."""

        def position(folder: Path):
            name = folder.name
            return int(folder.parent.name.split("_")[1]), ROUND_STAGES.index(name) if name in ROUND_STAGES else 0

        later = [p.parent for p in self.path.glob(f"round_*/*/{DONE}") if position(p.parent) >= position(stage.dir)]
        return "rm -rf " + " ".join(shlex.quote(str(p)) for p in sorted(set(later + [stage.dir])))

    @contextlib.contextmanager
    def claimed(self, cfg: DictConfig):
        """Hold the directory for this process (the lock goes with the process, so a killed or
        requeued job leaves none behind), clear torn writes, and bind it to `cfg`."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock: Optional[FileLock] = FileLock(str(self.path / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunDirBusy(
                f"run directory {self.path} is in use by another tpt process; wait for it to end or stop it"
            ) from None
        except OSError as e:  # ENOLCK (NFS without its lock daemon), ENOSYS, EOPNOTSUPP: no locks here
            log.warning(
                "run directory %s: file locks do not work on this filesystem (%s); going on without one. Two "
                "processes running this cell at once would both compute, and the first to publish each stage wins",
                self.path,
                e.strerror or e,
            )
            lock = None
        try:
            for stale in self.path.glob(".*.tmp"):  # an atomic write cut short by a kill: never a finished file
                if left_by_dead_process(stale):
                    stale.unlink(missing_ok=True)
            self._pin(cfg)
            yield self
        finally:
            if lock is not None:
                lock.release()

    def _pin(self, cfg: DictConfig) -> None:
        """A run directory belongs to one config: refuse to mix stages from another into it."""
        config = pinned(cfg)
        path = self.path / "run_config.yaml"
        if not path.exists():
            write_text_atomic(path, OmegaConf.to_yaml(config))
            return
        before = OmegaConf.to_container(OmegaConf.load(path))
        diff = sorted(_diff_keys(before, config))  # a key a newer tpt added, at null, is no difference
        if diff:
            raise ConfigError(
                f"run directory {self.path} holds a run with a different config (differs in: "
                f"{', '.join(diff)}). Use another name=... or delete the directory to start over."
            )


def _diff_keys(a, b, prefix: str = "") -> List[str]:
    """Keys whose values differ; a key missing on one side equals null on the other."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
