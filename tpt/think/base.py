"""The generation interface every backend implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Protocol, Sequence

from tpt.prompt import Message


@dataclass(frozen=True)
class Sampling:
    n: int  # samples per prompt
    temperature: float  # 0 = greedy
    top_p: float
    max_new_tokens: int
    seed: int

    @classmethod
    def from_cfg(cls, cfg) -> "Sampling":
        return cls(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                   max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int  # generated tokens, stop token included


class Generator(Protocol):
    def generate(self, conversations: Sequence[List[Message]], sampling: Sampling,
                 desc: str = "generate") -> List[List[Completion]]:
        """`sampling.n` completions for each conversation, in order."""
        ...

    def close(self) -> None:
        """Free the model (and accelerator memory)."""
        ...
