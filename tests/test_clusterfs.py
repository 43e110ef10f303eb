"""tpt on a filesystem that behaves like the worst cluster mounts (tests/clusterfs.py, FUSE): file locks
fail with ENOLCK, hard links with EPERM, attributes and names are cached for two seconds, and the same
folder is mounted twice, as two nodes see one network filesystem. The caches with 8 writers per entry
across both mounts, run directories, and a whole cell killed on one "node" and resumed on the other.
docs/guarantees.md says what holds there."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose, outcome
from tests.test_kill import command as cell_command
from tests.test_kill import metrics

WRITERS = 8


def fuse_missing() -> str:
    """Why FUSE cannot be mounted here ("" where it can)."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "no fusermount3 (Debian's fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return f"mfusepy does not load ({e})"
    return ""


pytestmark = pytest.mark.skipif(
    bool(fuse_missing()) and os.environ.get("CI") != "true", reason=f"FUSE: {fuse_missing()}"
)


def mount(backing: Path, mountpoint: Path) -> subprocess.Popen:
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.clusterfs", str(backing), str(mountpoint)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 30
    while not os.path.ismount(mountpoint):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"the FUSE mount did not come up: {proc.stdout.read()[-2000:]}")
        time.sleep(0.05)
    return proc


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """(backing folder, mount of "node A", mount of "node B"): one folder, two FUSE mounts."""
    assert not fuse_missing(), f"FUSE: {fuse_missing()} (CI installs fuse3 and mfusepy)"
    root = tmp_path_factory.mktemp("clusterfs")
    backing = root / "backing"
    backing.mkdir()
    procs = [mount(backing, root / "a"), mount(backing, root / "b")]
    try:
        yield backing, root / "a", root / "b"
    finally:
        for mountpoint in (root / "a", root / "b"):
            subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def leftovers(folder: Path) -> list:
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".drop")) or ".partial" in p.name]


def test_the_mounts_refuse_locks_and_links_and_share_one_folder(nodes):
    backing, a, b = nodes
    (a / "probe").write_text("from node A")
    assert (b / "probe").read_text() == "from node A"
    with pytest.raises(OSError) as refused:
        os.link(a / "probe", a / "probe-link")
    assert refused.value.errno == errno.EPERM
    with open(a / "probe") as f, pytest.raises(OSError) as no_lock:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert no_lock.value.errno == errno.ENOLCK


def ask_at_once(kind: str, roots: list, gates: Path) -> list:
    """Writers (one per root) ask the cache under their root for the same entry at once; what each got."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cache_writer",
                kind,
                "filesystem",
                str(root),
                str(gates),
                str(len(roots)),
                str(i),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, root in enumerate(roots)
    ]
    answers = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return answers


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["generation", "verdict"])
def test_eight_writers_of_one_entry_across_two_nodes_agree_on_one_whole_value(nodes, tmp_path, kind):
    """No lock works, so all 8 compute; the first published value is everyone's, whichever mount they
    wrote through, and the entry is the one whole file it was."""
    backing, a, b = nodes
    folder = f"cache-{kind}"
    answers = ask_at_once(kind, [(a if i % 2 else b) / folder for i in range(WRITERS)], tmp_path / "gates")
    assert sum(x["computed"] for x in answers) == WRITERS  # without locks everyone computes (the gate sees to it)
    assert len({json.dumps(x["value"], sort_keys=True) for x in answers}) == 1, answers
    [entry] = (backing / folder / ("generations" if kind == "generation" else "verdicts")).glob("*.json")
    assert json.loads(entry.read_text())["sha256"]
    assert not leftovers(backing / folder)


@pytest.mark.e2e
def test_checkpoints_are_not_linked_into_the_cache_without_links_and_nothing_fails(nodes, tmp_path):
    backing, a, b = nodes
    folder = "cache-checkpoint"
    answers = ask_at_once("checkpoint", [(a if i % 2 else b) / folder for i in range(4)], tmp_path / "gates")
    assert all(x["result"] is None for x in (y["value"] for y in answers))  # not stored, said in the log
    assert not (backing / folder / "trained").exists() or not list((backing / folder / "trained").iterdir())
    assert not leftovers(backing / folder)


def test_a_run_directory_without_locks_warns_once_and_publishes_first_wins(nodes, caplog):
    from tpt.rundir import RunDir

    backing, a, b = nodes
    cfg = compose(["data.size=8"])
    with RunDir(a / "run").claimed(cfg) as on_a, RunDir(b / "run").claimed(cfg) as on_b:  # no lock keeps B out
        assert "file locks do not work on this filesystem" in caplog.text
        on_a.run_stage(0, "eval", lambda out: (out / "metrics.json").write_text('{"from": "A"}'))
        on_b.run_stage(0, "eval", lambda out: (out / "metrics.json").write_text('{"from": "B"}'))
    assert json.loads((backing / "run" / "round_0" / "eval" / "metrics.json").read_text()) == {"from": "A"}
    assert not leftovers(backing / "run")


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_cell_killed_on_one_node_resumes_on_the_other_as_if_never_stopped(nodes, tiny_model_dir, tmp_path):
    """The run directory and the caches on the mount: killed once round 1's think has published, resumed
    through the other mount, the cell ends with the metrics of an undisturbed run on a local disk."""
    backing, a, b = nodes
    reference = tmp_path / "reference"
    subprocess.run(cell_command(tiny_model_dir, reference), cwd=ROOT, check=True, capture_output=True)

    def run_on(node: Path) -> list:
        cmd = cell_command(tiny_model_dir, node / "cell")
        return [*cmd, "cache=on", f"cache.dir={node / 'cache'}"]

    proc = subprocess.Popen(run_on(a), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and not (backing / "cell" / "round_1" / "think" / "DONE.json").exists():
        assert time.time() < deadline, "round 1's think never finished"
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = subprocess.run(run_on(b), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert outcome(metrics(backing / "cell")) == outcome(metrics(reference))
    assert "round 1 think: finished earlier, skipping" in (backing / "cell" / "launch.log").read_text()
    assert not leftovers(backing / "cell")
