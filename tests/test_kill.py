"""SIGKILL a real `python launch.py` at several points, between stages and in the middle of think and
eval; each rerun ends like an uninterrupted run, leaves no torn file, and redoes at most the chunk
that was being generated."""
import json
import os
import random
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, tiny_overrides

# Where to pull the plug: the moment each of these paths appears under the run directory.
KILL_POINTS = ["round_0/.eval.partial", "round_1/think/DONE.json", "round_1/.train.partial",
               "round_1/train/DONE.json", "round_1/.eval.partial"]
# Inside a stage: once its k-th chunk is written, k drawn at random (think has 4 chunks, eval 3).
CHUNKS = {"round_0/.eval.chunks": 3, "round_1/.think.chunks": 4, "round_1/.eval.chunks": 3}


def command(model_dir, run_dir):
    cell = tiny_overrides(model_dir) + ["pruning=none", "task.train_questions=8", "think.max_new_tokens=24",
                                        "eval.max_new_tokens=24", "data.size=6", "think.chunk_size=2",
                                        "eval.chunk_size=1"]
    return [sys.executable, "launch.py", *cell, f"hydra.run.dir={run_dir}"]


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").open()]


def kill_when(model_dir, run_dir, point):
    """Start a run and SIGKILL it as soon as `point` exists; whether it was still running then."""
    proc = subprocess.Popen(command(model_dir, run_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and not (run_dir / point).exists() and time.time() < deadline:
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
    rng = random.Random()
    points = KILL_POINTS + [f"{folder}/{rng.randrange(total - 1):05d}.json" for folder, total in CHUNKS.items()]

    killed_at = []
    for point in points:
        run_dir = tmp_path / point.replace("/", "_")
        killed = kill_when(tiny_model_dir, run_dir, point)
        chunk_folder = run_dir / point.rsplit("/", 1)[0]
        finished = len(list(chunk_folder.glob("*.json"))) if chunk_folder.name.endswith(".chunks") else None
        if killed:
            killed_at.append(point)
            assert not (run_dir / "summary.md").exists(), point
        subprocess.run(command(tiny_model_dir, run_dir), cwd=ROOT, check=True, capture_output=True)
        assert metrics(run_dir) == expected, point
        leftovers = [p for p in run_dir.rglob("*") if p.name.endswith((".partial", ".tmp", ".chunks"))]
        assert not leftovers, leftovers
        if killed and finished is not None:
            # The rerun took every chunk written before the kill; only the one in flight was lost.
            stage = "round {} {}".format(point[6], point.split(".")[1])
            total = CHUNKS[point.rsplit("/", 1)[0]]
            log = (run_dir / "launch.log").read_text()
            assert f"{stage}: {finished} of {total} chunks finished earlier" in log, (point, finished)
    # Stages that compute inside their partial folder (training) or before it (think, eval) are
    # long enough to be hit; a point is only missed when a write outruns the 5 ms polling.
    assert len(killed_at) >= 5, killed_at
