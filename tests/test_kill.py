"""SIGKILL a real `python launch.py` at several points; each rerun ends like an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, tiny_overrides

# Where to pull the plug: the moment each of these paths appears under the run directory.
KILL_POINTS = ["round_0/.eval.partial", "round_1/think/DONE.json", "round_1/.train.partial",
               "round_1/train/DONE.json", "round_1/.eval.partial"]


def command(model_dir, run_dir):
    cell = tiny_overrides(model_dir) + ["pruning=none", "task.train_questions=8", "think.max_new_tokens=24",
                                        "eval.max_new_tokens=24", "data.size=6"]
    return [sys.executable, "launch.py", *cell, f"hydra.run.dir={run_dir}"]


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").open()]


def test_sigkill_at_any_point_then_rerun_gives_the_same_metrics(tiny_model_dir, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(command(tiny_model_dir, reference), cwd=ROOT, check=True, capture_output=True)
    expected = metrics(reference)

    killed_at = []
    for point in KILL_POINTS:
        run_dir = tmp_path / point.replace("/", "_")
        proc = subprocess.Popen(command(tiny_model_dir, run_dir), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and not (run_dir / point).exists() and time.time() < deadline:
            time.sleep(0.005)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if killed:
            killed_at.append(point)
            assert not (run_dir / "summary.md").exists(), point
        subprocess.run(command(tiny_model_dir, run_dir), cwd=ROOT, check=True, capture_output=True)
        assert metrics(run_dir) == expected, point
        leftovers = [p for p in run_dir.rglob("*") if p.name.endswith((".partial", ".tmp"))]
        assert not leftovers, leftovers
    # Stages that compute inside their partial folder (training) or before it (think, eval) are
    # long enough to be hit; a point is only missed when a write outruns the 5 ms polling.
    assert len(killed_at) >= 3, killed_at
