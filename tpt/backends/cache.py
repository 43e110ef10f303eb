"""The generation cache: a backend's completions of a chunk of prompts, keyed by everything that
decides them (tpt.cache.KeyedStore holds them)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from tpt.backends.base import Completion, Sampling
from tpt.cache import LOCK_WAIT_S, KeyedStore, digest

# 4: the sampling names the math answer rule (`answer`, was `strict`). 3: keyed by the rendered
# prompt's token ids and each question's random stream (1: by the chat messages, which missed
# template changes; 2: without the streams, before they came from question ids).
KEY_VERSION = 4


def generation_key(
    model_identity: str, prompts: Sequence[Sequence[int]], keys: Sequence[str], sampling: Sampling, generator: dict
) -> str:
    """What decides a call's generations: the model, the token ids it is given (the rendered chat
    template, not the messages), each prompt's random stream (its question id), the sampling, and
    the backend settings that change samples."""
    return digest(
        {
            "version": KEY_VERSION,
            "model": model_identity,
            "prompts": prompts,
            "streams": list(keys),
            "sampling": asdict(sampling),
            "generator": generator,
        }
    )


class GenerationCache:
    def __init__(self, root: Path, lock_wait_s: float = LOCK_WAIT_S):
        self.store = KeyedStore(root, "generations", lock_wait_s)

    def get_or_compute(
        self, key: str, compute: Callable[[], List[List[Completion]]], desc: str = "generate"
    ) -> List[List[Completion]]:
        return self.fetch_or_compute(key, compute, desc)[0]

    def fetch_or_compute(
        self, key: str, compute: Callable[[], List[List[Completion]]], desc: str = "generate"
    ) -> Tuple[List[List[Completion]], Optional[float]]:
        """The completions, and the seconds generating them took when they came from the cache (None:
        generated here; tpt.cache.KeyedStore.fetch_or_compute)."""
        raw, saved = self.store.fetch_or_compute(key, lambda: [[asdict(c) for c in cs] for cs in compute()], desc)
        return [[Completion(**c) for c in cs] for cs in raw], saved
