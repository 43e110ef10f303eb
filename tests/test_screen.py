"""The screen of a run (tpt/logs.py): the loop a user watches, its tables, where the full log is, and no
library's logs, progress bars or warnings; those go to the run's launch.log, and `-v` brings them back."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY_VLLM, tiny_overrides

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.timeout(600)]


def run(model_dir, run_dir, *extra):
    cell = [o for o in tiny_overrides(model_dir) if not o.startswith(("backend=", "name="))]
    env = {k: v for k, v in os.environ.items() if k != "VLLM_LOGGING_LEVEL"}  # the user's vLLM log level
    done = subprocess.run(
        [sys.executable, "launch.py", *cell, *TINY_VLLM, *extra, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr, (run_dir / "launch.log").read_text()


def test_a_clean_run_shows_the_loop_and_nothing_else(vllm_tiny_dir, real_vllm, tmp_path):
    screen, log = run(vllm_tiny_dir, tmp_path / "run")
    lines = [line for line in screen.replace("\r", "\n").splitlines() if line.strip()]
    assert "WARNING" not in screen and "Warning" not in screen, screen
    assert (
        lines[0].startswith(f"cell {tmp_path / 'run'}") and f"full log: {tmp_path / 'run' / 'launch.log'}" in lines[0]
    )
    for seen in (
        "round 0 eval: 100%",
        "round 0: Pass@1",
        "round 1 think: 100%",
        "round 1 prune:",
        "round 1 train:",
        "round 1 eval: 100%",
        "round 1: Pass@1",
        "round | Pass@1 | Pass@2",
        "What it cost",
    ):
        assert seen in screen, (seen, screen)
    assert not any(word in screen for word in ("vLLM", "Processed prompts", "Loading", "INFO", "tok/s generating"))
    # The engine's and the trainer's output, and tpt's own detail, are in the log file
    for kept in ("vLLM engine ready", "Processed prompts", "[vllm", "train: ", "round 0 eval: starting"):
        assert kept in log, kept


def test_verbose_puts_the_libraries_back_on_the_screen(vllm_tiny_dir, real_vllm, tmp_path):
    screen, _ = run(vllm_tiny_dir, tmp_path / "run", "-v")
    assert "Processed prompts" in screen and "vLLM engine ready" in screen and "INFO" in screen
