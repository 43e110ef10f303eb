"""SIGKILL a real `python launch.py` again and again, between stages and in the middle of think and
eval, each time resuming the same run directory; the run ends like an uninterrupted one, leaves no
torn file, and each resume redoes at most the chunk that was being generated."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, outcome, tiny_overrides

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]  # ten runs of launch.py

# Where to pull the plug, in the order a run reaches them: the moment the path appears under the run
# directory (a stage's partial folder is `.<stage>.partial@<host>@<pid>`). `{k}` inside a stage: once
# its k-th chunk is written, k drawn from a seeded stream (think has 4 chunks, eval 3; never the last,
# after which the stage publishes at once). TPT_KILL_SEED=<n> replays another draw.
KILL_POINTS = [
    "round_0/.eval.partial",
    "round_0/.eval.chunks/{k}",
    "round_1/.think.chunks/{k}",
    "round_1/think/DONE.json",
    "round_1/.train.partial",
    "round_1/train/DONE.json",
    "round_1/.eval.partial",
    "round_1/.eval.chunks/{k}",
]
CHUNKS = {"round_0/.eval.chunks": 3, "round_1/.think.chunks": 4, "round_1/.eval.chunks": 3}
SEED = int(os.environ.get("TPT_KILL_SEED", "0"))


def command(model_dir, run_dir):
    cell = tiny_overrides(model_dir) + [
        "pruning=none",
        "task.train_questions=8",
        "think.max_new_tokens=24",
        "eval.max_new_tokens=24",
        "data.size=6",
        "think.chunk_size=2",
        "eval.chunk_size=1",
    ]
    return [sys.executable, "launch.py", *cell, f"hydra.run.dir={run_dir}"]


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").open()]


def kill_when(model_dir, run_dir, point):
    """Start a run and SIGKILL it as soon as `point` exists; whether it was still running then."""
    proc = subprocess.Popen(command(model_dir, run_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and not any(run_dir.glob(point + "*")) and time.time() < deadline:
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed


def test_sigkill_at_any_point_then_rerun_gives_the_same_metrics(tiny_model_dir, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(command(tiny_model_dir, reference), cwd=ROOT, check=True, capture_output=True)
    expected = metrics(reference)
    rng = random.Random(SEED)
    points = [
        p.format(k=f"{rng.randrange(CHUNKS[p.rsplit('/', 1)[0]] - 1):05d}.json") if "{k}" in p else p
        for p in KILL_POINTS
    ]

    run_dir = tmp_path / "run"
    resumed_chunks = []  # (stage, chunks finished when killed, of how many): what the next run must take
    for point in points:
        # Every point is followed by seconds of work (the rest of a stage, or the next stages), so the
        # kill lands while the run is still going: a point the run outran proves nothing and fails.
        assert kill_when(tiny_model_dir, run_dir, point), f"seed {SEED}: the run finished before the kill at {point}"
        assert not (run_dir / "summary.md").exists(), point
        folder = point.rsplit("/", 1)[0]
        if folder in CHUNKS:
            stage = "round {} {}".format(point[6], folder.split(".")[1])
            resumed_chunks.append((stage, len(list((run_dir / folder).glob("*.json"))), CHUNKS[folder]))
    subprocess.run(command(tiny_model_dir, run_dir), cwd=ROOT, check=True, capture_output=True)
    assert outcome(metrics(run_dir)) == outcome(expected)
    leftovers = [p for p in run_dir.rglob("*") if ".partial" in p.name or p.name.endswith((".tmp", ".chunks"))]
    assert not leftovers, leftovers
    log = (run_dir / "launch.log").read_text()  # every run of the cell appends to it
    for stage, finished, total in resumed_chunks:
        # The run after the kill took every chunk written before it; only the one in flight was lost.
        assert f"{stage}: {finished} of {total} chunks finished earlier" in log, (stage, finished, SEED)
        _, r, name = stage.split()  # and its cost.json counts them as reused, not generated again
        cost = json.loads((run_dir / f"round_{r}" / name / "cost.json").read_text())
        assert (cost["chunks"], cost["chunks_resumed"]) == (total, finished), (stage, cost, SEED)
        assert cost["chunks_resumed_saved_s"] > 0
