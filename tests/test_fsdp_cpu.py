"""FSDP really shards on CPU: two gloo processes under FSDP2 (`fully_shard`), one training step that
matches the single-process step on the same data, the full state dict gathered on save, and the
saved checkpoint loading in transformers and in vLLM.

accelerate runs FSDP only on accelerators (`train.strategy=fsdp` on a CPU trains as DDP there, and
tpt says so), so the two processes here are driven through torch's API directly, as accelerate's
FSDP2 path would drive them (tests/fsdp_cpu_step.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, TINY_KV_CACHE_GB, compose
from tpt.prompt import build_messages
from tpt.training.sft import build_trainer, to_conversations

pytestmark = pytest.mark.e2e

RECORDS = [{"question": f"What is {i} + 1?", "completion": f"{i} + 1 = {i + 1}.\n#### {i + 1}"} for i in range(4)]
LR = 1e-3
TOLERANCE = 1e-5  # fp32: gloo's all-reduce sums in another order than one process does


def one_batch(model_dir, tmp_path) -> dict:
    """The batch tpt's trainer would make of RECORDS (prompt masked out of the labels)."""
    cfg = compose(["train.batch_size=4", f"train.lr={LR}"]).train
    trainer = build_trainer(
        str(model_dir), to_conversations(RECORDS, lambda q: build_messages(q, "Solve it.")), tmp_path / "trainer", cfg
    )
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(RECORDS))])


def single_process_step(model_dir, batch) -> dict:
    """The same step in one process: the loss of each half averaged, as data parallelism averages gradients."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    loss = sum(model(**{k: v[r::2] for k, v in batch.items()}).loss for r in range(2)) / 2
    loss.backward()
    optimizer.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def fsdp_step(vllm_tiny_dir, tmp_path_factory):
    """One FSDP2 step over two gloo processes on tpt's batch: (the batch, the saved model folder)."""
    tmp_path = tmp_path_factory.mktemp("fsdp")
    batch = one_batch(vllm_tiny_dir, tmp_path)
    torch.save(dict(batch), tmp_path / "batch.pt")
    out = tmp_path / "fsdp_model"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29611",
            str(ROOT / "tests" / "fsdp_cpu_step.py"),
            str(tmp_path / "batch.pt"),
            str(vllm_tiny_dir),
            str(out),
            str(LR),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return batch, out


def test_fsdp_shards_over_two_cpu_processes_and_matches_one(vllm_tiny_dir, fsdp_step):
    batch, out = fsdp_step
    info = json.loads((out / "fsdp_step.json").read_text())
    # Sharded: each process held about half of every parameter.
    assert info["world"] == 2 and sum(info["shard"].values()) <= 0.55 * sum(info["full"].values())

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    saved = load_file(out / "model.safetensors")
    before = load_file(vllm_tiny_dir / "model.safetensors")
    reference = single_process_step(vllm_tiny_dir, batch)
    assert set(before) <= set(saved)  # every weight (the tied lm_head is written out as well)
    worst = max((saved[k] - reference[k]).abs().max().item() for k in before)
    moved = max((reference[k] - before[k]).abs().max().item() for k in before)
    print(f"fsdp vs one process: max |difference| {worst:.2e}, step size {moved:.2e}")
    assert worst <= TOLERANCE < moved, (worst, moved)  # the step happened, and matches the single-process one

    # The gathered checkpoint is a plain one: transformers loads it...
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved.items())


def accelerate_fsdp_env(processes: int) -> dict:
    """The variables `accelerate launch` sets from tpt's fsdp.yaml, computed by accelerate's launcher itself."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    from tpt.training.distributed import ACCELERATE_CONFIGS

    args = launch_command_parser().parse_args(
        [
            "--config_file",
            str(ACCELERATE_CONFIGS / "fsdp.yaml"),
            "--num_processes",
            str(processes),
            "-m",
            "tpt.training.worker",
            "job",
        ]
    )
    return {
        k: v
        for k, v in prepare_multi_gpu_env(_validate_launch_command(args)[0]).items()
        if k.startswith(("FSDP_", "ACCELERATE_USE_FSDP"))
    }


def test_fsdp_ranks_hold_half_the_model_after_loading(tmp_path):
    """Loading for FSDP as tpt does (load_causal_lm under fsdp.yaml's rank-0 loading, then accelerate's
    FSDP2 preparation): the second rank never holds a copy of the model (transformers' own path for it
    fills one with zeros: 8 x 280 GB of host RAM for the 70B), and after sharding each rank holds about
    half of it, with the weights rank 0 read (the same loss as the unsharded model)."""
    from transformers import AutoModelForCausalLM

    from tests.tiny_model import build

    model_dir = build(tmp_path / "model", hidden=768, heads=12, layers=8)  # ~80M parameters: 0.3 GB in fp32
    env = {**os.environ, **accelerate_fsdp_env(2)}
    assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29612",
            str(ROOT / "tests" / "fsdp_cpu_load.py"),
            str(model_dir),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    unsharded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    full = sum(p.numel() * p.element_size() for p in unsharded.parameters())
    batch = torch.arange(64).reshape(2, 32) % 1000  # as tests/fsdp_cpu_load.py
    with torch.no_grad():
        reference_loss = unsharded(input_ids=batch, labels=batch).loss.item()
    mb = 1 / 2**20
    for r, info in enumerate(ranks):
        grew = (info["held_sharded_kb"] - info["held_before_kb"]) * 1024  # allocated, not freed memory kept for reuse
        resident = (info["rss_sharded_kb"] - info["rss_before_kb"]) * 1024
        print(
            f"rank {r}: model {full * mb:.0f} MB; loaded {info['loaded_bytes'] * mb:.0f} MB, "
            f"peak while loading +{(info['peak_loading_kb'] - info['rss_before_kb']) / 1024:.0f} MB; "
            f"sharded {info['sharded_bytes'] * mb:.0f} MB, held +{grew * mb:.0f} MB "
            f"(resident +{resident * mb:.0f} MB); "
            f"loss {info['loss']:.6f}"
        )
        assert info["sharded_bytes"] <= 0.55 * full  # its half of the parameters (norms are small and whole)
        assert 0.3 * full < grew < 0.75 * full  # held: about half, not the whole
        assert abs(info["loss"] - reference_loss) < 1e-4  # rank 0's weights, not zeros or random ones
    assert ranks[0]["loaded_bytes"] == full
    assert ranks[1]["loaded_bytes"] == 0  # parameters on the meta device
    assert (ranks[1]["peak_loading_kb"] - ranks[1]["rss_before_kb"]) * 1024 < 0.1 * full


def test_vllm_serves_the_fsdp_checkpoint(real_vllm, vllm_tiny_dir, fsdp_step):
    """... and so does vLLM (the engine the next round's think and eval run), serving the trained
    weights: the same seeds sample otherwise than from the model before the step."""
    from tpt.backends import Sampling
    from tpt.backends import vllm as vllm_backend

    sampling = Sampling(n=8, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    prompts, keys = [[1, 2, 3], [4, 5, 6, 7]], ["a", "b"]
    samples = {}
    for name, model in (("fsdp", fsdp_step[1]), ("base", vllm_tiny_dir)):
        gen = vllm_backend.VLLMGenerator(str(model), dtype="float32", kv_cache_gb=TINY_KV_CACHE_GB)
        samples[name] = [[c.text for c in cs] for cs in gen.generate(prompts, sampling, keys=keys)]
        vllm_backend.release()
    assert all(len(cs) == 8 and all(cs) for cs in samples["fsdp"])
    assert samples["fsdp"] != samples["base"]
