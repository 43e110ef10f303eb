"""Chunked generation: a stage resumes from its finished chunks and publishes what an uninterrupted
run publishes, the cache works per chunk, replicas share the chunks, and SLURM arrays deal them out."""

from __future__ import annotations

import os

import pytest

from tests.conftest import TINY_VLLM, compose, count_generate_calls, tiny_overrides
from tpt import loop
from tpt.backends.hf import HFGenerator
from tpt.stages.array import shares

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


CHUNKED = ["pruning=none", "task.train_questions=8", "think.chunk_size=2", "eval.chunk_size=1"]


def stage_files(run_dir):
    return {
        f"{i}/{stage}/{name}": (run_dir / f"round_{i}" / stage / name).read_bytes()
        for i, stage in ((0, "eval"), (1, "think"), (1, "eval"))
        for name in ("samples.jsonl", "prompts.jsonl")
    }


def run_dying_on_the_third_think_chunk(monkeypatch, cfg, run_dir):
    """`loop.run_cell` with the backend killed as it starts think's third chunk (two finished)."""
    real, calls = HFGenerator.generate, []

    def dies(self, prompts, sampling, keys=None, desc="generate"):
        calls.append(desc)
        if calls.count("round 1 think") == 3:
            raise KeyboardInterrupt("killed in the middle of think")
        return real(self, prompts, sampling, keys, desc)

    with monkeypatch.context() as m:
        m.setattr(HFGenerator, "generate", dies)
        with pytest.raises(KeyboardInterrupt):
            loop.run_cell(cfg, run_dir)


@pytest.mark.e2e
def test_an_interrupted_stage_resumes_from_its_finished_chunks(tiny_model_dir, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    loop.run_cell(compose(tiny_overrides(tiny_model_dir) + CHUNKED), reference)

    run_dying_on_the_third_think_chunk(monkeypatch, compose(tiny_overrides(tiny_model_dir) + CHUNKED), tmp_path / "run")
    chunks = sorted(p.name for p in (tmp_path / "run" / "round_1" / ".think.chunks").iterdir())
    assert chunks == ["00000.json", "00001.json"]  # two of four finished, each written whole
    resumed = count_generate_calls(monkeypatch)
    loop.run_cell(compose(tiny_overrides(tiny_model_dir) + CHUNKED), tmp_path / "run")
    assert resumed.count("round 1 think") == 2  # only the two chunks that had not finished
    assert stage_files(tmp_path / "run") == stage_files(reference)  # byte for byte
    assert not (tmp_path / "run" / "round_1" / ".think.chunks").exists()  # cleared once published


@pytest.mark.e2e
def test_the_cache_works_per_chunk(tiny_model_dir, tmp_path, monkeypatch):
    """Chunks one cell finished are reused by another: here `a` stopped after two of think's four
    chunks, and `b` (another data size, another run directory) generates only the other two."""
    cache = ["cache=on", f"cache.dir={tmp_path / 'cache'}"]
    run_dying_on_the_third_think_chunk(
        monkeypatch, compose(tiny_overrides(tiny_model_dir) + CHUNKED + cache), tmp_path / "a"
    )
    generated = count_generate_calls(monkeypatch)
    loop.run_cell(compose(tiny_overrides(tiny_model_dir) + CHUNKED + cache + ["data.size=2"]), tmp_path / "b")
    assert generated.count("round 1 think") == 2 and "round 0 eval" not in generated


def test_chunks_are_dealt_out_round_robin():
    assert shares([0, 1, 2, 3, 4], 3) == [[0, 3], [1, 4], [2]]
    assert shares([7], 3) == [[7]]


def test_replicas_get_their_own_devices(monkeypatch):
    import torch

    from tpt.backends import replica_count
    from tpt.backends.vllm import replica_environment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [replica_environment(r, 2, 2, cpu=False) for r in range(2)] == [
        {"CUDA_VISIBLE_DEVICES": "4,5"},
        {"CUDA_VISIBLE_DEVICES": "6,7"},
    ]
    with pytest.raises(RuntimeError, match="needs 2 GPUs"):
        replica_environment(2, 3, 2, cpu=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert [replica_environment(r, 2, 1, cpu=True) for r in range(2)] == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0,1"},
        {"VLLM_CPU_OMP_THREADS_BIND": "2,3"},
    ]
    assert replica_environment(0, 1, 1, cpu=True) == {}
    # Tensor parallel ranks on a CPU: each its own cores (vLLM's CPU workers need them bound).
    assert replica_environment(0, 1, 2, cpu=True) == {"VLLM_CPU_OMP_THREADS_BIND": "0,1|2,3"}
    assert [replica_environment(r, 2, 2, cpu=True) for r in range(2)] == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0|1"},
        {"VLLM_CPU_OMP_THREADS_BIND": "2|3"},
    ]
    with pytest.raises(RuntimeError, match="needs a core per rank"):
        replica_environment(0, 2, 4, cpu=True)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})  # equal shares: one core stays idle
    assert [replica_environment(r, 2, 1, cpu=True) for r in range(2)] == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0"},
        {"VLLM_CPU_OMP_THREADS_BIND": "1"},
    ]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    # The cell's GPUs over the tensor parallel size; only vLLM runs replicas.
    assert replica_count(compose(["backend=vllm", "model.gpus=8", "model.tensor_parallel_size=2"])) == 4
    assert replica_count(compose(["backend=vllm", "model.gpus=8", "backend.replicas=2"])) == 2
    assert replica_count(compose(["backend=hf", "model.gpus=8"])) == 1


@pytest.mark.engine
def test_replicas_share_a_stage_and_sample_alike(real_vllm, vllm_tiny_dir, tmp_path, caplog):
    """Two engine processes share think's chunks on this CPU, each on its own core; every question
    samples as with one."""
    import logging

    from tests.conftest import engine_processes
    from tpt.backends import release_all
    from tpt.cell import Cell
    from tpt.preflight import prepare
    from tpt.rundir import RunDir
    from tpt.stages import think
    from tpt.stages.sampling import sample

    model = vllm_tiny_dir
    samples = {}
    for replicas in (2, 1):
        cfg = compose(
            tiny_overrides(model)
            + TINY_VLLM
            + ["task.train_questions=8", "think.chunk_size=2", "think.n=3", f"backend.replicas={replicas}"]
        )
        cell = Cell.open(prepare(cfg), RunDir(tmp_path / f"run{replicas}"))
        with caplog.at_level(logging.INFO, logger="tpt.backends.vllm"):
            samples[replicas], _, _ = sample(cell, think.job(cell, 1))
        if replicas == 2:  # each replica's engine keeps to its half of the cores
            cores, half = sorted(os.sched_getaffinity(0)), len(os.sched_getaffinity(0)) // 2
            pinned = sorted(sorted(os.sched_getaffinity(int(pid))) for pid in engine_processes())
            assert pinned == [cores[:half], cores[half : 2 * half]]
        release_all()
    assert caplog.text.count("VLLM_CPU_OMP_THREADS_BIND") == 2  # two engines, one core each
    assert samples[1] == samples[2] and len(samples[1]) == 8 * 3
    assert engine_processes() == []


@pytest.mark.e2e
def test_a_stage_reports_its_progress(tiny_model_dir, tmp_path):
    seen = []
    cfg = compose(tiny_overrides(tiny_model_dir) + CHUNKED)
    from tpt.tracking import Tracker

    original = Tracker.progress
    Tracker.progress = lambda self, stage, figures: seen.append((stage, dict(figures)))
    try:
        loop.run_cell(cfg, tmp_path)
    finally:
        Tracker.progress = original
    think = [f for stage, f in seen if stage == "round_1/think"]
    assert [f["chunks_done"] for f in think] == [1, 2, 3, 4] and all(f["chunks"] == 4 for f in think)
    assert all(f["tokens_per_s"] > 0 and f["seconds_left"] >= 0 for f in think) and think[-1]["seconds_left"] == 0


def test_a_finished_stage_clears_chunks_a_kill_left_behind(tmp_path):
    """Killed after publishing a stage but before clearing its chunks: the rerun skips the stage and
    clears them (tests/test_kill.py hits this window only now and then)."""
    from tpt.rundir import DONE, RunDir

    run = RunDir(tmp_path)
    stage = run.run_stage(1, "think", lambda out: (out / "samples.jsonl").write_text("{}\n"))
    stage.chunks.mkdir()
    (stage.chunks / "00000.json").write_text("{}")
    ran = []
    again = run.run_stage(1, "think", ran.append)
    assert not ran and (again.dir / DONE).is_file() and (again / "samples.jsonl").read_text() == "{}\n"
    assert not stage.chunks.exists()
