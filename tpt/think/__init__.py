"""Generation backends behind one interface: `make_generator(cfg, model_path)`."""
from __future__ import annotations

from tpt.think.base import Completion, Generator, Sampling


def make_generator(backend: str, model_path: str, *, dtype: str = "auto", batch_size: int = 32,
                   revision: str | None = None) -> Generator:
    if backend == "hf":
        from tpt.think.hf import HFGenerator

        return HFGenerator(model_path, dtype=dtype, batch_size=batch_size, revision=revision)
    raise ValueError(f"unknown think backend {backend!r}; known: ['hf']")


__all__ = ["Completion", "Generator", "Sampling", "make_generator"]
