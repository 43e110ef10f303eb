"""backend=vllm on CPU: the request/response mapping against a fake `vllm` module (tests/fake_vllm),
which runs in the same spawned child process the real engine would. What needs a GPU (the real
engine, tensor parallelism, memory release) is exercised by scripts/gpu_smoke.sh."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import compose, tiny_overrides
from tpt import loop
from tpt.models import load_tokenizer
from tpt.prompt import build_messages, encode, render
from tpt.backends import BackendUnavailable, Sampling, check_backend, make_generator
from tpt.backends import vllm as vllm_backend

FAKE = Path(__file__).parent / "fake_vllm"


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(FAKE))  # the spawned child inherits sys.path
    log = tmp_path / "vllm_calls.jsonl"
    monkeypatch.setenv("TPT_FAKE_VLLM_LOG", str(log))
    return lambda: [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def test_sampling_maps_to_vllm_parameters():
    s = Sampling(n=10, temperature=0.8, top_p=0.95, max_new_tokens=512, seed=3, kind="code",
                 stop=("</answer>",))
    kw = vllm_backend.sampling_kwargs(s, prompt_index=2)
    assert kw == {"n": 10, "temperature": 0.8, "top_p": 0.95, "max_tokens": 512, "seed": 3 * 1_000_003 + 2,
                  "stop": ["</answer>"], "include_stop_str_in_output": True, "skip_special_tokens": True}


@pytest.mark.parametrize("preset, tp", [("llama3_3_70b_instruct", 8), ("gemma2_9b_it", 1), ("gemma2_2b_it", 1)])
def test_engine_takes_tensor_parallel_size_from_the_model_preset(preset, tp):
    cfg = compose([f"model={preset}", "backend=vllm", "task=gsm8k"])
    assert cfg.model.tensor_parallel_size == tp
    kw = vllm_backend.engine_kwargs(cfg.model.id, dtype=cfg.model.dtype, revision=None, tensor_parallel_size=tp,
                                    seed=0, gpu_memory_utilization=0.9, max_model_len=None, enforce_eager=False)
    assert kw["tensor_parallel_size"] == tp and kw["model"] == cfg.model.id and "max_model_len" not in kw


def test_generate_runs_the_engine_in_a_spawned_process(fake_vllm, tiny_model_dir):
    cfg = compose(["backend=vllm", "model.tensor_parallel_size=2", "backend.gpu_memory_utilization=0.5",
                   "backend.max_model_len=2048", "backend.enforce_eager=true"])
    gen = make_generator(cfg, str(tiny_model_dir), None, batch_size=32)
    convs = [build_messages(f"What is {i} + 1?", "Solve it.") for i in range(3)]
    tok = load_tokenizer(str(tiny_model_dir))
    out = gen.generate(encode(tok, render(tok, convs)), Sampling(n=4, temperature=0.7, top_p=1.0, max_new_tokens=64, seed=1))
    calls = fake_vllm()
    assert len(calls) == 1
    call = calls[0]
    assert call["pid"] != os.getpid()  # a child process ran the engine, and it has exited since
    with pytest.raises(ProcessLookupError):
        os.kill(call["pid"], 0)
    assert call["engine"] == {"model": str(tiny_model_dir), "tokenizer": str(tiny_model_dir), "dtype": "auto",
                              "tensor_parallel_size": 2, "seed": 1, "gpu_memory_utilization": 0.5,
                              "enforce_eager": True, "max_model_len": 2048}
    # The prompt token ids the stage rendered (the model's chat template), as given.
    expected = [tok(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True),
                    add_special_tokens=False)["input_ids"] for c in convs]
    assert [r["prompt_token_ids"] for r in call["requests"]] == expected
    assert [r["params"]["seed"] for r in call["requests"]] == [1_000_003, 1_000_004, 1_000_005]
    assert [len(cs) for cs in out] == [4, 4, 4]
    # Cut after the answer line, as the hf backend cuts; token counts from the engine's token ids.
    assert out[0][2].text == "seed 1000003 sample 2\n#### 2" and out[0][2].n_tokens == 7


def test_a_wrong_number_of_samples_fails_the_call(fake_vllm, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("TPT_FAKE_VLLM_SHORT", "1")
    gen = make_generator(compose(["backend=vllm"]), str(tiny_model_dir), None, batch_size=32)
    with pytest.raises(RuntimeError, match="vLLM returned 1 samples for prompt 0, expected n=2"):
        gen.generate([[1, 2, 3]], Sampling(n=2, temperature=0.7, top_p=1.0,
                                                                  max_new_tokens=8, seed=0))


def test_vllm_is_refused_before_compute_where_it_cannot_run(monkeypatch, fake_vllm):
    import importlib.util

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="needs a CUDA GPU"):
        check_backend("vllm")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    with pytest.raises(BackendUnavailable, match=r"install the gpu extra \(pip install -e '.\[gpu\]'\)"):
        check_backend("vllm")
    check_backend("hf")  # always available


def test_a_whole_round_with_think_vllm(fake_vllm, tiny_model_dir, tmp_path, monkeypatch):
    """Think and eval through the (fake) engine, pruning and training on its samples."""
    monkeypatch.setattr(loop, "check_backend", lambda backend: None)  # no GPU here: the fake stands in
    cfg = compose(tiny_overrides(tiny_model_dir) + ["backend=vllm", "pruning=none", "rounds=1"])
    rows = loop.run(cfg, tmp_path)
    calls = fake_vllm()
    assert len(calls) == 3  # eval 0, think 1, eval 1
    assert calls[2]["engine"]["model"] == str(tmp_path / "round_1" / "train" / "model")  # M_1, as saved
    think = [json.loads(l) for l in (tmp_path / "round_1" / "think" / "samples.jsonl").open()]
    assert len(think) == 4 * 2 and all(s["completion"].endswith(f"#### {s['sample']}") for s in think)
    assert rows[1]["data_size"] == 3
