"""The sandbox against hostile programs: each attack is contained, judged wrong, and leaves the
machine and the verifier healthy (no process left behind, a correct program still passes). The
later tests are the findings of an attacker's review: runs reading each other, shared uids, memory
and CPU not bounded per run, the host in sight, no syscall filter, a full disk misnamed."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tpt.compose import compose
from tpt.tasks.base import TestCase, make_code_problem
from tpt.verify.code import CodeVerifier
from tpt.verify.sandbox import RUN_UID_BASE, Limits, Sandbox, probe_isolation

CI = os.environ.get("CI") == "true"
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def problem(tests, **kw):
    return make_code_problem("p", "Add two numbers.", [TestCase(i, o) for i, o in tests], "test", **kw)


@pytest.fixture(scope="module")
def verifier():
    cfg = compose(
        ["task=leetcode", "task.code.default_time_limit_s=1", "task.code.default_memory_mb=128", "task.code.workers=2"]
    )
    return CodeVerifier(cfg.task.code)


def sandbox_processes() -> list:
    """Processes running under a sandbox uid (when tpt runs as root) or still running main.py."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        uid = int(text.split("Uid:")[1].split()[0])
        if uid >= RUN_UID_BASE or b"main.py" in cmdline:
            found.append(status.parent.name)
    return found


def assert_healthy(verifier) -> None:
    deadline = time.time() + 5  # killed processes need a moment to be reaped
    while sandbox_processes() and time.time() < deadline:
        time.sleep(0.1)
    assert sandbox_processes() == [], "a sandboxed process outlived its run"
    ok = verifier.judge(problem([("2 3\n", "5\n")]), ADD)
    assert ok["verdict"] == "passed"


def need(isolation: str) -> None:
    if not probe_isolation().get(isolation):
        reason = f"this machine gives the sandbox no {isolation} namespace ({probe_isolation()})"
        if CI:
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)


def judge_hostile(verifier, code, expected="done\n", **kw):
    start = time.perf_counter()
    verdict = verifier.judge(problem([("1 2\n", expected)], **kw), code)
    assert not verdict["correct"] and not verdict["passed_some"]
    return verdict, time.perf_counter() - start


def test_fork_bomb_is_contained(verifier):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    verdict, took = judge_hostile(verifier, code)
    assert verdict["verdict"] == "timeout" and took < 10
    assert_healthy(verifier)


def test_memory_bomb_is_contained(verifier):
    verdict, _ = judge_hostile(verifier, "x = []\nwhile True:\n    x.append(bytearray(10 ** 7))\n")
    assert verdict["verdict"] == "memory"
    assert_healthy(verifier)


def test_infinite_loop_hits_the_cpu_limit(verifier):
    verdict, took = judge_hostile(verifier, "while True:\n    pass\n")
    assert verdict["verdict"] == "timeout" and took < 5
    assert_healthy(verifier)


def test_sleeping_forever_hits_the_wall_limit(verifier):
    verdict, took = judge_hostile(verifier, "import time\ntime.sleep(10 ** 6)\n")
    assert verdict["verdict"] == "timeout" and took < 6  # wall limit 2 x 1 s + 1 s
    assert_healthy(verifier)


def test_background_process_that_leaves_the_group_is_killed(verifier):
    need("pid")
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\nprint('done')\n"
    verdict = verifier.judge(problem([("1 2\n", "done\n")]), code)
    assert verdict["verdict"] == "passed"  # the program itself is fine; its orphan must still go
    assert_healthy(verifier)


def test_printing_gigabytes_stops_at_the_output_limit(verifier, tmp_path):
    code = "import sys\nchunk = 'x' * (1 << 20)\nwhile True:\n    sys.stdout.write(chunk)\n"
    verdict, took = judge_hostile(verifier, code)
    assert verdict["verdict"] == "output_limit" and took < 5
    assert_healthy(verifier)


def test_environment_secrets_do_not_reach_the_program(verifier, monkeypatch):
    monkeypatch.setenv("TPT_TEST_SECRET", "s3cr3t-token")
    code = "import os\nprint(os.environ.get('TPT_TEST_SECRET', 'absent'))\n"
    verdict, _ = judge_hostile(verifier, code, expected="s3cr3t-token\n")
    assert verdict["verdict"] == "wrong_answer"
    assert_healthy(verifier)


def test_no_connection_to_a_server_on_localhost(verifier):
    need("network")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port, accepted, stop = server.getsockname()[1], [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            accepted.append(1)
            conn.sendall(b"secret-from-server\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    code = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print(s.recv(100).decode().strip())\n"
    )
    try:
        verdict, _ = judge_hostile(verifier, code, expected="secret-from-server\n")
    finally:
        stop.set()
        thread.join()
        server.close()
    assert verdict["verdict"] == "runtime_error" and accepted == []
    assert_healthy(verifier)


def test_no_writing_or_deleting_outside_its_directory(verifier, tmp_path):
    if not (probe_isolation().get("filesystem") or os.geteuid() == 0):
        need("filesystem")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.chmod(tmp_path, 0o777)  # even a world-writable directory stays out of reach
    code = (
        f"import os\nopen({str(tmp_path / 'escaped.txt')!r}, 'w').write('x')\n"
        f"os.remove({str(victim)!r})\nprint('done')\n"
    )
    verdict, _ = judge_hostile(verifier, code)
    assert verdict["verdict"] == "runtime_error"
    assert not (tmp_path / "escaped.txt").exists() and victim.read_text() == "keep me"
    code = f"import os\nos.remove({str(victim)!r})\nprint('done')\n"
    judge_hostile(verifier, code)
    assert victim.read_text() == "keep me"
    assert_healthy(verifier)


def test_a_program_may_write_in_its_own_directory(verifier):
    code = "open('scratch.txt', 'w').write('7')\nprint(open('scratch.txt').read())\n"
    assert verifier.judge(problem([("", "7\n")]), code)["verdict"] == "passed"


def test_runs_in_parallel_slots_do_not_share_a_directory():
    sandbox = Sandbox(slots=2)
    code = "import os\nprint(sorted(os.listdir('.')))\nopen('left-behind.txt', 'w').write('x')\n"
    outs = [sandbox.run(code, "", Limits(cpu_s=1)).stdout for _ in range(3)]
    assert outs == ["['main.py']\n"] * 3  # a fresh directory every time: nothing of the run before


def test_many_files_cannot_fill_the_disk(verifier):
    need("filesystem")
    code = "i = 0\nwhile True:\n    open(f'f{i}', 'w').write('x' * (1 << 20))\n    i += 1\n"
    verdict, took = judge_hostile(verifier, code)  # 64 MB in all, then "No space left on device"
    assert verdict["verdict"] == "disk_full" and took < 5  # named for what happened
    assert_healthy(verifier)


UNPRIVILEGED_PROGRAM = (
    "import os, socket\nprint(os.getuid())\n"
    "try:\n    open({escape!r}, 'w').write('x')\nexcept OSError as e:\n    print('write', e.errno)\n"
    "try:\n    print(open({token!r}).read())\nexcept OSError as e:\n    print('token', e.errno)\n"
    "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
    "except OSError as e:\n    print('net', e.errno)\n"
    "open('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())\n"
)


def test_unprivileged_users_get_the_same_containment():
    """tpt run by an ordinary user: bubblewrap builds the sandbox in a user namespace of that user's,
    so writes outside, the user's own private files and the network stay out of reach."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        reason = "needs root and setpriv (util-linux) to become an ordinary user"
        pytest.fail(f"CI=true: {reason}") if CI else pytest.skip(reason)
    need("filesystem")
    tmp_path = Path(tempfile.mkdtemp(prefix="tpt-unprivileged-"))  # pytest's tmp_path is private to root
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "token").write_text("secret-token")
    os.chmod(home / "token", 0o600)
    shutil.chown(home, 1000, 1000)
    shutil.chown(home / "token", 1000, 1000)
    os.chmod(tmp_path, 0o777)
    program = UNPRIVILEGED_PROGRAM.format(escape=str(tmp_path / "escaped"), token=str(home / "token"))
    driver = (
        "import sys; from tpt.verify.sandbox import Sandbox, Limits; "
        f"r = Sandbox().run({program!r}, '', Limits(cpu_s=2)); print(r.stdout, end=''); "
        "print(r.stderr, file=sys.stderr)"
    )
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {"PYTHONPATH": ":".join([str(Path(__file__).resolve().parents[1]), *site]), "HOME": str(home)}
    try:
        out = subprocess.run(
            [
                "setpriv",
                "--reuid",
                "1000",
                "--regid",
                "1000",
                "--clear-groups",
                "--inh-caps=-all",
                "/usr/bin/python3",
                "-c",
                driver,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = out.stdout.split("\n")
        assert lines[0] == "1000" and lines[-2:] == ["ok", ""], out.stdout + out.stderr
        assert lines[3] in ("net 101", "net 111")  # its own network: unreachable, or nothing listening there
        assert lines[1] in ("write 2", "write 13", "write 30")  # out of sight (2) or refused
        assert lines[2] in ("token 2", "token 13") and "secret-token" not in out.stdout  # the user's own 0600 file too
        assert not (tmp_path / "escaped").exists()
    finally:
        shutil.rmtree(tmp_path)


# --- the attacker's findings ---------------------------------------------------------------------


def run_together(sandbox, programs, limits):
    """Run programs at the same time in the sandbox's slots; their results in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(programs)) as pool:
        return list(pool.map(lambda p: sandbox.run(p[0], p[1], limits), programs))


SPY = """
import os, time
found = []
time.sleep(0.5)  # the neighbour is running now
for top in ("/", "/tmp", "/work", "/proc"):
    try:
        names = os.listdir(top)
    except OSError:
        continue
    for name in names:
        path = os.path.join(top, name)
        for sub in ("stdin", "fd/0", "fd/1", "cmdline", "environ"):
            try:
                data = open(os.path.join(path, sub), "rb").read(200)
            except OSError:
                continue
            if b"neighbour-secret" in data:
                found.append(os.path.join(path, sub))
print("found", found, "pids", sorted(int(n) for n in os.listdir("/proc") if n.isdigit()))
"""
NEIGHBOUR = "import sys, time\nsecret = sys.stdin.read()\nprint(secret, flush=True)\ntime.sleep(2)\n"


def test_concurrent_runs_cannot_read_each_other():
    need("pid")
    sandbox = Sandbox(slots=2)
    spy, neighbour = run_together(sandbox, [(SPY, ""), (NEIGHBOUR, "neighbour-secret")], Limits(cpu_s=3))
    assert neighbour.stdout.strip() == "neighbour-secret"
    assert spy.stdout.startswith("found [] pids [1, 2") and "neighbour-secret" not in spy.stdout, spy.stdout
    assert len(spy.stdout.split("pids")[1].split(",")) <= 3  # its own PID namespace: the jail's init, itself


def test_two_tpt_processes_never_share_a_uid(tmp_path):
    """Two tpt processes on one machine (a sweep's cells on one node): their programs run under
    different uids, so neither can signal, trace or exhaust the other's processes."""
    import subprocess
    import sys

    if os.geteuid() != 0:
        reason = (
            "distinct uids per run are given as root (an ordinary user's runs share that user's uid, each in "
            "a user namespace of its own)"
        )
        pytest.fail(f"CI=true (which runs as root): {reason}") if CI else pytest.skip(reason)
    driver = (
        "from tpt.verify.sandbox import Sandbox, Limits; "
        "print(Sandbox().run('import time; time.sleep(3)', '', Limits(cpu_s=2, wall_s=6)).status)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    drivers = {p.pid for p in procs}

    def descends_from_a_driver(pid: int) -> bool:  # not another test's sandboxed program on this machine
        while pid > 1:
            pid = int((Path("/proc") / str(pid) / "status").read_text().split("PPid:")[1].split()[0])
            if pid in drivers:
                return True
        return False

    uids, deadline = set(), time.time() + 20
    while len(uids) < 2 and time.time() < deadline:
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if (
                    (status.parent / "cmdline").read_bytes().split(b"\0")[-2:-1] == [b"main.py"]  # the program itself
                    and descends_from_a_driver(int(status.parent.name))
                ):
                    uids.add(int(status.read_text().split("Uid:")[1].split()[0]))
            except (OSError, IndexError):  # a process that ended meanwhile
                pass
        time.sleep(0.1)
    assert [p.communicate(timeout=30)[0].strip() for p in procs] == ["ok", "ok"]
    assert len(uids) == 2 and all(u >= RUN_UID_BASE for u in uids), uids


MEMFDS = """
import os
fds = []
for i in range(8):
    fd = os.memfd_create(f"m{i}")
    os.write(fd, b"x" * (60 << 20))  # 60 MB each, outside any address-space limit
    fds.append(fd)
print("held", 8 * 60, "MB")
"""
CHILDREN = """
import os, time
for i in range(5):
    if os.fork() == 0:
        block = bytearray(250 << 20)  # 250 MB each, every child under its own address-space limit
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(2)
        os._exit(0)
statuses = [os.wait()[1] for _ in range(5)]
if all(s == 0 for s in statuses):
    print("held", 5 * 250, "MB")
"""
BURN = """
import os, time
children = []
for _ in range(2):  # each burns 1.5 s of CPU time, under the 2 s limit; together 3 s, over it
    pid = os.fork()
    if pid == 0:
        while time.process_time() < 1.5:
            pass
        os._exit(0)
    children.append(pid)
for c in children:
    os.waitpid(c, 0)
print("burnt")
"""


@pytest.mark.parametrize("program", [MEMFDS, CHILDREN], ids=["memfd", "children"])
def test_a_run_is_bounded_in_memory_as_a_whole(program):
    need("cgroup")
    result = Sandbox().run(program, "", Limits(cpu_s=4, memory_mb=300))
    assert result.status == "memory" and "held" not in result.stdout, result


def test_a_run_is_bounded_in_cpu_time_as_a_whole():
    """Two children burning CPU together pass a per-process limit, not a per-run one."""
    need("cgroup")
    result = Sandbox().run(BURN, "", Limits(cpu_s=2, wall_s=60))  # CPU time, not wall time: a busy machine is slower
    assert result.status == "timeout" and "burnt" not in result.stdout, result


def test_the_host_is_out_of_sight(tmp_path):
    need("filesystem")
    sock_path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen()
    os.chmod(sock_path, 0o777)
    os.chmod(tmp_path, 0o777)
    repo = Path(__file__).resolve().parents[1]
    program = f"""
import os, socket
seen = [p for p in ({str(repo)!r}, {str(repo / ".git")!r}, "/etc/passwd", "/root", "/home", "/opt", {str(sock_path)!r})
        if os.path.exists(p)]
print("seen", seen)
print("pid1", open("/proc/1/cmdline", "rb").read().split(bytes(1))[0].decode())
print("pids", len([n for n in os.listdir("/proc") if n.isdigit()]))
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({str(sock_path)!r})
    print("connected")
except OSError as e:
    print("socket", e.errno)
"""
    try:
        result = Sandbox().run(program, "", Limits(cpu_s=2))
    finally:
        server.close()
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result
    assert lines[0] == "seen []", result.stdout
    assert lines[1].endswith("bwrap")  # PID 1 of its own namespace, not the host's init
    assert int(lines[2].split()[1]) <= 3 and lines[3] == "socket 2", result.stdout


PRIVILEGES = """
import ctypes, os, errno
libc = ctypes.CDLL(None, use_errno=True)
status = open("/proc/self/status").read()
print("nnp", status.split("NoNewPrivs:")[1].split()[0], "seccomp", status.split("Seccomp:")[1].split()[0])
def errno_of(result):
    return ctypes.get_errno() if result != 0 else 0
print("unshare", errno_of(libc.unshare(0x10000000)))  # CLONE_NEWUSER
print("mount", errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
print("ptrace", errno_of(libc.ptrace(0, 0, None, None)))  # PTRACE_TRACEME
print("keyctl", errno_of(libc.syscall(250, 0, 0, 0, 0, 0)))  # keyctl(KEYCTL_GET_KEYRING_ID)
print("bpf", errno_of(libc.syscall(321, 0, None, 0)))
# x86-64 numbers: io_uring_setup, userfaultfd, perf_event_open, process_vm_readv, open_by_handle_at, msgget,
# io_setup, setuid, and 470, no call yet: refused by default, whatever a future kernel makes of it.
for name, number in (("io_uring_setup", 425), ("userfaultfd", 323), ("perf_event_open", 298),
                     ("process_vm_readv", 310), ("open_by_handle_at", 304), ("msgget", 68), ("io_setup", 206),
                     ("setuid_call", 105), ("unassigned_470", 470)):
    print(name, errno_of(libc.syscall(number, 0, 0, 0, 0, 0, 0)))
setuid_files = []
for top in ("/usr", "/lib", "/lib64", "/bin", "/sbin"):
    for root, dirs, files in os.walk(top):
        for f in files:
            try:
                if os.stat(os.path.join(root, f)).st_mode & 0o4000:
                    setuid_files.append(os.path.join(root, f))
            except OSError:
                pass
print("setuid", setuid_files)
"""


def test_no_new_privileges_and_a_syscall_filter():
    need("filesystem")
    if not probe_isolation().get("seccomp"):
        pytest.fail("no seccomp filter: libseccomp missing") if CI else pytest.skip("no libseccomp here")
    out = dict(line.split(" ", 1) for line in Sandbox().run(PRIVILEGES, "", Limits(cpu_s=5)).stdout.splitlines())
    assert out["nnp"] == "1 seccomp 2"  # no_new_privs, and a filter in force
    for call in (
        "unshare",
        "mount",
        "ptrace",
        "keyctl",
        "bpf",
        "io_uring_setup",
        "userfaultfd",
        "perf_event_open",
        "process_vm_readv",
        "open_by_handle_at",
        "msgget",
        "io_setup",
        "setuid_call",
        "unassigned_470",
    ):
        assert out[call] == "1", (call, out)  # EPERM: only the calls the filter allows get through
    assert out["setuid"] == "[]"  # and no setuid binary in sight


SOCKETS = """
import socket
for name, family, kind in (("AF_UNIX", 1, 1), ("AF_INET", 2, 1), ("AF_INET6", 10, 1), ("AF_NETLINK", 16, 2),
                           ("AF_PACKET", 17, 2), ("AF_KEY", 15, 3), ("AF_ALG", 38, 5), ("AF_VSOCK", 40, 1),
                           ("AF_BLUETOOTH", 31, 5), ("AF_RDS", 21, 5), ("AF_TIPC", 30, 2), ("AF_CAN", 29, 3),
                           ("AF_XDP", 44, 3), ("AF_KCM", 41, 2)):
    try:
        socket.socket(family, kind).close()
        print(name, "opened")
    except OSError as e:
        print(name, e.errno)
try:
    socket.socketpair(40, 1)
    print("socketpair AF_VSOCK opened")
except OSError as e:
    print("socketpair AF_VSOCK", e.errno)
"""


def test_only_local_and_ip_sockets_can_be_opened():
    """The seccomp filter allows socket() and socketpair() for AF_UNIX, AF_INET and AF_INET6 only (by
    argument): AF_VSOCK reaches the hypervisor, the rest is kernel surface no test program needs."""
    need("filesystem")
    if not probe_isolation().get("seccomp"):
        pytest.fail("no seccomp filter: libseccomp missing") if CI else pytest.skip("no libseccomp here")
    out = dict(line.rsplit(" ", 1) for line in Sandbox().run(SOCKETS, "", Limits(cpu_s=5)).stdout.splitlines())
    assert {k: v for k, v in out.items() if v == "opened"} == {
        "AF_UNIX": "opened",
        "AF_INET": "opened",
        "AF_INET6": "opened",
    }, out
    assert all(v == "1" for k, v in out.items() if v != "opened"), out  # EPERM, from the filter


def test_without_isolation_no_program_runs_unless_the_config_says_so(monkeypatch, tmp_path):
    """Where bubblewrap, user namespaces or libseccomp are missing, a code cell refuses to start (one line
    naming what is missing and the switch); with task.code.isolation=none it runs and says so."""
    from tpt import preflight
    from tpt.verify import sandbox as sandbox_module
    from tpt.verify.sandbox import SandboxUnavailable

    monkeypatch.setattr(sandbox_module, "find_bwrap", lambda: None)  # as where bubblewrap is not installed
    monkeypatch.setattr(sandbox_module, "probe_isolation", lambda: dict(Sandbox(slots=1).isolation))
    with pytest.raises(SandboxUnavailable, match="the sandbox lacks bubblewrap's namespaces"):
        Sandbox(required=True)
    cfg = compose(["task=minicode", "backend=hf"])
    with pytest.raises(SandboxUnavailable, match=r"no bubblewrap's namespaces .* or set task.code.isolation=none"):
        preflight.prepare(cfg)
    with pytest.raises(SandboxUnavailable):  # the verifier itself refuses too, whoever builds it
        CodeVerifier(cfg.task.code).judge(problem([("2 3\n", "5\n")]), ADD)
    ready = preflight.prepare(compose(["task=minicode", "backend=hf", "task.code.isolation=none"]))
    assert ready.sandbox["isolation"] == "none" and ready.sandbox["bwrap"] is False
    assert CodeVerifier(ready.cfg.task.code).judge(problem([("2 3\n", "5\n")]), ADD)["verdict"] == "passed"
