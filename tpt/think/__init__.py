"""Generation backends behind one interface: `make_generator(backend, model_path, ...)`."""
from __future__ import annotations

import importlib.util

from tpt.think.base import Completion, Generator, Sampling

from tpt.config import BACKENDS


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run on this machine (no vLLM installed, no GPU)."""


def check_backend(backend: str) -> None:
    """Fail before any compute when `backend` cannot run here."""
    if backend != "vllm":
        return
    if importlib.util.find_spec("vllm") is None:
        raise BackendUnavailable("think=vllm needs vLLM: install the gpu extra (pip install -e '.[gpu]') on a "
                                 "machine with a CUDA GPU, or use think=hf")
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("think=vllm needs a CUDA GPU and this machine has none visible; use think=hf")


def make_generator(backend: str, model_path: str, *, dtype: str = "auto", batch_size: int = 32,
                   revision: str | None = None, tensor_parallel_size: int = 1, vllm_options: dict | None = None
                   ) -> Generator:
    if backend == "hf":
        from tpt.think.hf import HFGenerator

        return HFGenerator(model_path, dtype=dtype, batch_size=batch_size, revision=revision)
    if backend == "vllm":
        from tpt.think.vllm import VLLMGenerator

        return VLLMGenerator(model_path, dtype=dtype, revision=revision, tensor_parallel_size=tensor_parallel_size,
                             **(vllm_options or {}))
    raise ValueError(f"unknown think backend {backend!r}; known: {list(BACKENDS)}")


def generator_from_config(cfg, model_path: str, revision: str | None) -> Generator:
    """The backend `cfg.think.backend` (it serves eval too) for `model_path`, set up from the config."""
    think = cfg.think
    return make_generator(think.backend, model_path, dtype=cfg.model.dtype, batch_size=think.batch_size,
                          revision=revision, tensor_parallel_size=cfg.model.tensor_parallel_size,
                          vllm_options={"gpu_memory_utilization": think.gpu_memory_utilization,
                                        "max_model_len": think.max_model_len, "enforce_eager": think.enforce_eager})


def generator_settings(cfg) -> dict:
    """The backend settings that can change its samples (part of the generation cache key)."""
    settings = {"backend": cfg.think.backend, "batch_size": cfg.think.batch_size, "dtype": cfg.model.dtype}
    if cfg.think.backend == "vllm":  # batching does not change vLLM's samples; sharding may
        settings.update(batch_size=None, tensor_parallel_size=cfg.model.tensor_parallel_size)
    return settings


__all__ = ["BackendUnavailable", "Completion", "Generator", "Sampling", "check_backend", "generator_from_config",
           "generator_settings", "make_generator"]
