"""The sandbox against hostile programs: each attack is contained, judged wrong, and leaves the
machine and the verifier healthy (no process left behind, a correct program still passes)."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tpt.config import compose
from tpt.tasks.base import TestCase, make_code_problem
from tpt.verify.code import CodeVerifier
from tpt.verify.sandbox import UID_BASE, Limits, Sandbox, probe_isolation

CI = os.environ.get("CI") == "true"
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def problem(tests, **kw):
    return make_code_problem("p", "Add two numbers.", [TestCase(i, o) for i, o in tests], "test", **kw)


@pytest.fixture(scope="module")
def verifier():
    cfg = compose(["task=leetcode", "task.code.default_time_limit_s=1", "task.code.default_memory_mb=128",
                   "task.code.workers=2"])
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
        if UID_BASE <= uid < UID_BASE + 1000 or b"main.py" in cmdline:
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
    code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "print(s.recv(100).decode().strip())\n")
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
    code = (f"import os\nopen({str(tmp_path / 'escaped.txt')!r}, 'w').write('x')\n"
            f"os.remove({str(victim)!r})\nprint('done')\n")
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
    code = "import os\nprint(os.getcwd(), sorted(os.listdir('.')))\n"
    outs = {sandbox.run(code, "", Limits(cpu_s=1)).stdout for _ in range(3)}
    assert len(outs) == 3 and all("['main.py']" in o for o in outs)  # a fresh directory every time


def test_many_files_cannot_fill_the_disk(verifier):
    need("filesystem")
    code = ("i = 0\nwhile True:\n    open(f'f{i}', 'w').write('x' * (1 << 20))\n    i += 1\n")
    verdict, took = judge_hostile(verifier, code)  # 64 MB in all, then "No space left on device"
    assert verdict["verdict"] == "runtime_error" and took < 5
    assert_healthy(verifier)


def test_unprivileged_users_get_the_same_containment():
    """tpt run by an ordinary user: jail.py enters a user namespace (with its own uid mapped) for
    the network, PID and mount namespaces, so writes outside and the network stay blocked."""
    import json
    import shutil
    import subprocess

    from tpt.verify.sandbox import JAIL, default_python

    import tempfile

    python = default_python()
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become an ordinary user")
    tmp_path = Path(tempfile.mkdtemp(prefix="tpt-unprivileged-"))  # pytest's tmp_path is private to root
    os.chmod(tmp_path, 0o777)
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").write_text(
        "import os, socket\nprint(os.getuid())\n"
        f"try:\n    open({str(tmp_path / 'escaped')!r}, 'w').write('x')\nexcept OSError as e:\n    print('write', e.errno)\n"
        "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\nexcept OSError as e:\n    print('net', e.errno)\n"
        "open('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())\n")
    shutil.chown(work, 1000, 1000)
    spec = {"workdir": str(work), "uid": None, "argv": [python, "-I", "main.py"],
            "limits": {"cpu_s": 1, "memory_bytes": 512 << 20, "file_bytes": 16 << 20, "processes": 16, "open_files": 64}}
    out = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "--inh-caps=-all",
                          python, "-I", "-S", str(JAIL), json.dumps(spec)], cwd=work, env={},
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0 and "Operation not permitted" in out.stderr:
        pytest.skip(f"this kernel allows no unprivileged user namespaces: {out.stderr[-200:]}")
    try:
        assert out.stdout.split("\n")[:4] == ["1000", "write 30", "net 101", "ok"], out.stdout + out.stderr
        assert not (tmp_path / "escaped").exists()
    finally:
        shutil.rmtree(tmp_path)
