"""Run untrusted Python programs, each contained (jail.py) and limited; one at a time per worker slot.
What a run gets, and why, is in docs/design.md ("The sandbox")."""
from __future__ import annotations

import functools
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

JAIL = Path(__file__).with_name("jail.py")
SANDBOX_ERROR = 125  # jail.py's exit status when the program could not be started
# Unprivileged uids the programs run under when tpt runs as root, one per concurrent slot.
UID_BASE = 61000


@dataclass(frozen=True)
class Limits:
    cpu_s: float = 2.0  # CPU seconds (rounded up to whole seconds by the kernel's RLIMIT_CPU)
    wall_s: Optional[float] = None  # null: 2 x cpu_s + 1 s (interpreter start-up, a loaded machine)
    memory_mb: int = 512  # address space
    output_mb: int = 64  # largest file it may write, stdout included
    processes: int = 16
    open_files: int = 64

    @property
    def wall_limit(self) -> float:
        return self.wall_s if self.wall_s is not None else 2 * self.cpu_s + 1.0


@dataclass(frozen=True)
class RunResult:
    status: str  # ok | runtime_error | timeout | memory | output_limit | sandbox_error
    exit_code: int
    stdout: str
    stderr: str  # its last 2000 characters
    wall_s: float


def _which_status(exit_code: int, timed_out: bool, stderr: str) -> str:
    if timed_out or exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return "timeout"  # wall clock, or the soft / hard CPU-time limit
    # Python ignores SIGXFSZ, so the limit shows as EFBIG ("File too large") instead.
    if exit_code == 128 + signal.SIGXFSZ or "File too large" in stderr:
        return "output_limit"
    if exit_code == SANDBOX_ERROR and "tpt sandbox:" in stderr:
        return "sandbox_error"
    if exit_code != 0:
        return "memory" if "MemoryError" in stderr else "runtime_error"
    return "ok"


@functools.lru_cache(maxsize=None)
def probe_isolation() -> dict:
    """Which namespaces jail.py gets on this machine (asked once per process)."""
    with tempfile.TemporaryDirectory(prefix="tpt-probe-") as workdir:
        out = subprocess.run([sys.executable, "-I", "-S", str(JAIL), "--probe", workdir], capture_output=True,
                             text=True, timeout=30)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"network": False, "pid": False, "filesystem": False}


def default_python() -> str:
    """An interpreter every sandbox uid can execute: this one's base interpreter unless it lives under
    a private directory (pyenv under /root), else the system python3."""
    candidates = [getattr(sys, "_base_executable", None), sys.executable, "/usr/bin/python3"]
    for c in candidates:
        if c and _world_executable(Path(c)):
            return c
    return sys.executable


def _world_executable(path: Path) -> bool:
    path = path.resolve()
    if not path.is_file() or not os.stat(path).st_mode & 0o001:
        return False
    return all(os.stat(p).st_mode & 0o001 for p in path.parents)  # every directory searchable by others


class Sandbox:
    """Runs programs; thread-safe, at most `slots` at once (one per worker thread)."""

    def __init__(self, slots: int = 1, python: Optional[str] = None, root: Optional[Path] = None):
        self.python = python or default_python()
        self.root = Path(root or tempfile.gettempdir())
        self.as_root = os.geteuid() == 0
        self._uids: "queue.Queue[Optional[int]]" = queue.Queue()
        for i in range(slots):
            self._uids.put(UID_BASE + i if self.as_root else None)
        self.isolation = {**probe_isolation(), "own_uid": self.as_root}
        if not self.isolation["network"]:
            log.warning("sandbox: this machine allows no network namespace, so programs under test can reach "
                        "the network (isolation: %s)", self.isolation)
        if not self.isolation.get("filesystem") and not self.as_root:
            log.warning("sandbox: no mount namespace and not root, so programs under test can write wherever "
                        "you can (isolation: %s)", self.isolation)

    def run(self, code: str, stdin: str, limits: Limits) -> RunResult:
        uid = self._uids.get()
        try:
            with _Workspace(self.root, uid) as (workdir, private):
                (workdir / "main.py").write_text(code, encoding="utf-8")
                (private / "stdin").write_text(stdin, encoding="utf-8")
                return self._run_in(workdir, private, uid, limits)
        finally:
            self._uids.put(uid)

    def _run_in(self, workdir: Path, private: Path, uid: Optional[int], limits: Limits) -> RunResult:
        spec = {"workdir": str(workdir), "uid": uid, "argv": [self.python, "-I", "main.py"],
                "limits": {"cpu_s": max(1, int(-(-limits.cpu_s // 1))), "memory_bytes": limits.memory_mb << 20,
                           "file_bytes": limits.output_mb << 20, "processes": limits.processes,
                           "open_files": limits.open_files}}
        start = time.perf_counter()
        with open(private / "stdin", "rb") as fin, open(private / "stdout", "wb") as fout, \
                open(private / "stderr", "wb") as ferr:
            proc = subprocess.Popen([sys.executable, "-I", "-S", str(JAIL), json.dumps(spec)],
                                    stdin=fin, stdout=fout, stderr=ferr, env={}, cwd=workdir,
                                    start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_limit)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)
                proc.wait()
        wall = time.perf_counter() - start
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        stdout = _read_capped(private / "stdout", limits.output_mb << 20)
        stderr = _read_capped(private / "stderr", 1 << 20)[-2000:]
        return RunResult(_which_status(code, timed_out, stderr), code, stdout, stderr, wall)


class _Workspace:
    """A fresh working directory owned by the program's uid, and a private one for its stdio."""

    def __init__(self, root: Path, uid: Optional[int]):
        self.root, self.uid = root, uid

    def __enter__(self):
        self.private = Path(tempfile.mkdtemp(prefix="tpt-run-", dir=self.root))  # mode 0700, ours
        self.workdir = self.private / "work"
        self.workdir.mkdir(mode=0o700)
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
            os.chmod(self.private, 0o711)  # the program may pass through to its workdir, not list or read ours
        return self.workdir, self.private

    def __exit__(self, *exc):
        shutil.rmtree(self.private, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_capped(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")

