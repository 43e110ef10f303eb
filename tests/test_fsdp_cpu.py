"""FSDP really shards on CPU: two gloo processes under FSDP2 (`fully_shard`), one training step that
matches the single-process step on the same data, the full state dict gathered on save, and the
saved checkpoint loading in transformers and in vLLM.

accelerate runs FSDP only on accelerators (`train.strategy=fsdp` on a CPU trains as DDP there, and
tpt says so), so the two processes here are driven through torch's API directly, as accelerate's
FSDP2 path would drive them (tests/fsdp_cpu_step.py).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, compose
from tpt.prompt import build_messages
from tpt.training.sft import build_trainer, to_conversations

pytestmark = pytest.mark.e2e

RECORDS = [{"question": f"What is {i} + 1?", "completion": f"{i} + 1 = {i + 1}.\n#### {i + 1}"} for i in range(4)]
LR = 1e-3
TOLERANCE = 1e-5  # fp32: gloo's all-reduce sums in another order than one process does


def one_batch(model_dir, tmp_path) -> dict:
    """The batch tpt's trainer would make of RECORDS (prompt masked out of the labels)."""
    cfg = compose(["train.batch_size=4", f"train.lr={LR}"]).train
    trainer = build_trainer(str(model_dir), to_conversations(RECORDS, lambda q: build_messages(q, "Solve it.")),
                            tmp_path / "trainer", cfg)
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
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29611",
                          str(ROOT / "tests" / "fsdp_cpu_step.py"), str(tmp_path / "batch.pt"), str(vllm_tiny_dir),
                          str(out), str(LR)], capture_output=True, text=True, timeout=600, cwd=ROOT)
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


def test_vllm_serves_the_fsdp_checkpoint(real_vllm, vllm_tiny_dir, fsdp_step):
    """... and so does vLLM (the engine the next round's think and eval run), serving the trained
    weights: the same seeds sample otherwise than from the model before the step."""
    from tpt.backends import Sampling
    from tpt.backends import vllm as vllm_backend

    sampling = Sampling(n=8, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    prompts, keys = [[1, 2, 3], [4, 5, 6, 7]], ["a", "b"]
    samples = {}
    for name, model in (("fsdp", fsdp_step[1]), ("base", vllm_tiny_dir)):
        gen = vllm_backend.VLLMGenerator(str(model), dtype="float32")
        samples[name] = [[c.text for c in cs] for cs in gen.generate(prompts, sampling, keys=keys)]
        vllm_backend.release()
    assert all(len(cs) == 8 and all(cs) for cs in samples["fsdp"])
    assert samples["fsdp"] != samples["base"]
