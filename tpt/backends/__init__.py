"""Generation backends: the one registry of backend names (`backend=hf|vllm`), serving think and eval."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

from tpt.backends.base import Completion, Generator, Sampling


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run on this machine (no vLLM installed, no GPU)."""


def _hf(model_path: str, revision, cfg, batch_size: int, tokenizer=None) -> Generator:
    from tpt.backends.hf import HFGenerator

    return HFGenerator(model_path, dtype=cfg.model.dtype, batch_size=batch_size, revision=revision, tokenizer=tokenizer)


def _vllm(model_path: str, revision, cfg, batch_size: int, tokenizer=None) -> Generator:
    from tpt.backends.vllm import VLLMGenerator

    b = cfg.backend
    return VLLMGenerator(model_path, dtype=cfg.model.dtype, revision=revision,
                         tensor_parallel_size=cfg.model.tensor_parallel_size,
                         gpu_memory_utilization=b.gpu_memory_utilization, max_model_len=b.max_model_len,
                         enforce_eager=b.enforce_eager)


def _check_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise BackendUnavailable("backend=vllm needs vLLM: install the gpu extra (pip install -e '.[gpu]') on a "
                                 "machine with a CUDA GPU, or use backend=hf")
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("backend=vllm needs a CUDA GPU and this machine has none visible; use backend=hf")


@dataclass(frozen=True)
class Backend:
    make: Callable[..., Generator]  # (model_path, revision, cfg, batch_size, tokenizer) -> Generator
    check: Callable[[], None]  # raises BackendUnavailable where it cannot run
    sharded: bool  # shards the model over model.tensor_parallel_size GPUs; its batching does not change samples


BACKENDS = {
    "hf": Backend(_hf, lambda: None, sharded=False),
    "vllm": Backend(_vllm, _check_vllm, sharded=True),
}


def check_backend(name: str) -> None:
    """Fail before any compute when backend `name` cannot run here."""
    BACKENDS[name].check()


def make_generator(cfg, model_path: str, revision: str | None, batch_size: int, tokenizer=None) -> Generator:
    """The configured backend (`cfg.backend`) for `model_path`; `batch_size` is the stage's; a
    backend that decodes in this process reuses `tokenizer` when given."""
    return BACKENDS[cfg.backend.name].make(model_path, revision, cfg, batch_size, tokenizer)


def generator_settings(cfg, batch_size: int) -> dict:
    """The backend settings that can change its samples (part of the generation cache key)."""
    name = cfg.backend.name
    settings = {"backend": name, "batch_size": batch_size, "dtype": cfg.model.dtype}
    if BACKENDS[name].sharded:  # batching does not change vLLM's samples; sharding may
        settings.update(batch_size=None, tensor_parallel_size=cfg.model.tensor_parallel_size)
    return settings


__all__ = ["BACKENDS", "BackendUnavailable", "Completion", "Generator", "Sampling", "check_backend",
           "generator_settings", "make_generator"]
