"""One cgroup per program run: a single bound on the memory of everything the run holds (its
children, memfd and tmpfs pages included), on its process count, and a meter of its total CPU time.

Works with cgroup v2 (memory and pids controllers delegated to this process's cgroup) or cgroup v1
(the memory, pids and cpuacct hierarchies writable below this process's own groups, as for root on
most machines and inside most SLURM jobs). `Cgroups.detect()` returns None where neither is
writable; the sandbox then falls back to per-process limits and says what is not bounded.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import Dict, Optional

ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> Dict[str, str]:
    """controller (or "" for cgroup v2) -> this process's cgroup path."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


class RunCgroup:
    """The cgroup(s) of one run: join it in the child, read its CPU time, ask whether it ran out of
    memory, kill what is left and remove it."""

    def __init__(self, dirs: Dict[str, Path], version: int):
        self.dirs, self.version = dirs, version

    @property
    def procs_files(self) -> list:
        """Where the run's first process writes its pid (once per hierarchy)."""
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def pids(self) -> list:
        found = []
        for d in dict.fromkeys(self.dirs.values()):
            try:
                found += [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except OSError:
                pass
        return sorted(set(found))

    def cpu_seconds(self) -> float:
        if self.version == 2:
            stat = (self.dirs["cpu"] / "cpu.stat").read_text().split()
            return int(stat[stat.index("usage_usec") + 1]) / 1e6
        return int((self.dirs["cpu"] / "cpuacct.usage").read_text()) / 1e9

    def out_of_memory(self) -> bool:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            fields = (self.dirs["memory"] / name).read_text().split()
        except OSError:
            return False
        return "oom_kill" in fields and int(fields[fields.index("oom_kill") + 1]) > 0

    def hit_process_limit(self) -> bool:
        try:
            fields = (self.dirs["pids"] / "pids.events").read_text().split()
        except OSError:
            return False
        return "max" in fields and int(fields[fields.index("max") + 1]) > 0

    def remove(self) -> None:
        """Kill whatever still runs in the cgroup, then delete it."""
        for d in dict.fromkeys(self.dirs.values()):
            for _ in range(100):
                pids = [int(p) for p in (d / "cgroup.procs").read_text().split()] if d.exists() else []
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.01)
            try:
                d.rmdir()
            except OSError:
                pass


class Cgroups:
    """Makes a cgroup per run below this process's own."""

    _counter = itertools.count()

    def __init__(self, parents: Dict[str, Path], version: int):
        self.parents, self.version = parents, version

    @classmethod
    def detect(cls) -> Optional["Cgroups"]:
        own = _own_paths()
        unified = ROOT if (ROOT / "cgroup.controllers").is_file() else None
        if unified is not None and "" in own:
            parent = unified / own[""].lstrip("/")
            controllers = (parent / "cgroup.subtree_control").read_text().split() if parent.is_dir() else []
            if {"memory", "pids"} <= set(controllers) and _writable(parent):
                return cls({"memory": parent, "pids": parent, "cpu": parent}, 2)
        v1 = {"memory": "memory", "pids": "pids", "cpu": "cpuacct"}
        parents = {}
        for role, controller in v1.items():
            if controller not in own:
                return None
            mount = next((m for m in (ROOT / controller, ROOT / "cpu,cpuacct") if m.is_dir()), None)
            if mount is None or not _writable(mount / own[controller].lstrip("/")):
                return None
            parents[role] = mount / own[controller].lstrip("/")
        return cls(parents, 1)

    def create(self, memory_bytes: int, processes: int) -> RunCgroup:
        name = f"tpt-{os.getpid()}-{next(self._counter)}"
        dirs = {}
        for role, parent in self.parents.items():
            d = parent / name
            d.mkdir(exist_ok=True)
            dirs[role] = d
        run = RunCgroup(dirs, self.version)
        try:
            if self.version == 2:
                (dirs["memory"] / "memory.max").write_text(str(memory_bytes))
                _try_write(dirs["memory"] / "memory.swap.max", "0")
                (dirs["pids"] / "pids.max").write_text(str(processes))
            else:
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                _try_write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(memory_bytes))  # no swapping out of it
                (dirs["pids"] / "pids.max").write_text(str(processes))
        except OSError:
            run.remove()
            raise
        return run


def _try_write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:  # not every kernel has swap accounting
        pass
