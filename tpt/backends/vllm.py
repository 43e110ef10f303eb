"""vLLM offline-engine backend (`backend=vllm`): the GPU path, with tensor parallelism.

The engine lives in a child process started with `spawn`, one per `generate` call: when it exits,
its GPU memory is free for the train stage, and a CPU install never imports vLLM. Prompts go in as
the token ids `hf` would use; each is one request of `n` samples with a seed of its own. vLLM
cannot stop on the answer patterns (only on strings), so samples may run on past them and are then
cut as `hf` cuts them (`Sampling.finalize`). Exactly `n` samples must come back per prompt.
"""
from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Dict, List, Sequence

from tpt.backends.base import Completion, Sampling, stream_seed

log = logging.getLogger(__name__)


def engine_kwargs(model_path: str, *, dtype: str, revision: str | None, tensor_parallel_size: int,
                  seed: int, gpu_memory_utilization: float, max_model_len: int | None,
                  enforce_eager: bool) -> Dict:
    """Arguments of `vllm.LLM(...)`."""
    kwargs = {"model": model_path, "tokenizer": model_path, "dtype": "auto" if dtype == "auto" else dtype,
              "tensor_parallel_size": tensor_parallel_size, "seed": seed,
              "gpu_memory_utilization": gpu_memory_utilization, "enforce_eager": enforce_eager}
    if revision:
        kwargs["revision"] = revision
    if max_model_len:
        kwargs["max_model_len"] = max_model_len
    return kwargs


def sampling_kwargs(sampling: Sampling, prompt_index: int) -> Dict:
    """Arguments of `vllm.SamplingParams(...)` for one prompt."""
    return {"n": sampling.n, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens, "seed": stream_seed(sampling.seed, prompt_index),
            "stop": list(sampling.stop), "include_stop_str_in_output": True, "skip_special_tokens": True}


def to_completions(outputs, sampling: Sampling) -> List[List[Completion]]:
    """vLLM `RequestOutput`s (one per prompt, in order) -> `n` completions per prompt."""
    results = []
    for i, out in enumerate(outputs):
        samples = list(out.outputs)
        if len(samples) != sampling.n:
            raise RuntimeError(f"vLLM returned {len(samples)} samples for prompt {i}, expected n={sampling.n}")
        results.append([Completion(text=sampling.finalize(s.text), n_tokens=len(s.token_ids)) for s in samples])
    return results


def _generate_in_child(engine: Dict, prompt_ids: List[List[int]], sampling: Dict) -> tuple:
    """Runs in the spawned process: build the engine, generate, hand back plain tuples and the
    seconds spent generating (engine start-up excluded)."""
    from vllm import LLM, SamplingParams

    sampling = Sampling(**{**sampling, "stop": tuple(sampling["stop"])})
    llm = LLM(**engine)
    params = [SamplingParams(**sampling_kwargs(sampling, i)) for i in range(len(prompt_ids))]
    start = time.perf_counter()
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params)
    seconds = time.perf_counter() - start
    if len(outputs) != len(prompt_ids):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompt_ids)} prompts")
    return [[(c.text, c.n_tokens) for c in cs] for cs in to_completions(outputs, sampling)], seconds


class VLLMGenerator:
    def __init__(self, model_path: str, dtype: str = "auto", revision: str | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, enforce_eager: bool = False):
        self.model_path, self.revision = model_path, revision
        self.last_generate_seconds: float | None = None  # the engine's own time in the last call
        self.options = {"dtype": dtype, "revision": revision, "tensor_parallel_size": tensor_parallel_size,
                        "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
                        "enforce_eager": enforce_eager}

    def generate(self, prompt_ids: Sequence[List[int]], sampling: Sampling,
                 desc: str = "generate") -> List[List[Completion]]:
        prompt_ids = [list(ids) for ids in prompt_ids]
        engine = engine_kwargs(self.model_path, seed=sampling.seed, **self.options)
        log.info("%s: %d prompts x %d samples on vLLM (tensor parallel %d), in a spawned process",
                 desc, len(prompt_ids), sampling.n, self.options["tensor_parallel_size"])
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            raw, self.last_generate_seconds = pool.submit(_generate_in_child, engine, prompt_ids,
                                                          asdict(sampling)).result()
        results = [[Completion(text=t, n_tokens=k) for t, k in cs] for cs in raw]
        tokens = sum(c.n_tokens for cs in results for c in cs)
        log.info("%s: %d sequences, %d tokens, %.0f tok/s generating, %.0f s in all (engine start-up included)",
                 desc, len(prompt_ids) * sampling.n, tokens, tokens / max(self.last_generate_seconds, 1e-9),
                 time.perf_counter() - start)
        return results

    def close(self) -> None:
        """Nothing to free here: the engine and its GPU memory went with the child process."""
