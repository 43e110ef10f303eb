"""The generation interface every backend implements, and what both share: sampling settings, the
random stream of each prompt, and completions. Backends take prompts as token ids, rendered once
by the stage (tpt.prompt), so `hf` and `vllm` sample from the very same tokens."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import List, Protocol, Sequence, Tuple

from tpt.verify import answer_format


def stream_seed(seed: int, key: str) -> int:
    """The random stream of one prompt (`key`: its question id) under a stage seed: the same wherever
    the question sits in a call, so subsets, orders and chunks of the questions sample alike.
    vLLM gives a request's j-th sample `stream_seed + j`; 62-bit streams do not meet in practice."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") >> 2


@dataclass(frozen=True)
class Sampling:
    n: int  # samples per prompt
    temperature: float  # 0 = greedy
    top_p: float
    max_new_tokens: int
    seed: int
    kind: str = "math"  # the task kind: when a completion is finished (tpt.verify.answer_format)
    answer: str = "lm_eval"  # math: the task's answer id (tpt.verify.answer_of): where the answer is
    stop: Tuple[str, ...] = ()  # further stop strings: a sample ends after the first one it writes

    @classmethod
    def from_cfg(cls, cfg, kind: str = "math", answer: str = "lm_eval") -> "Sampling":
        return cls(
            n=cfg.n,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            seed=cfg.seed,
            kind=kind,
            answer=answer,
            stop=tuple(cfg.get("stop") or ()),
        )

    def finished(self, text: str) -> bool:
        """Whether a sample may stop here: its answer is complete, or it wrote a stop string."""
        return answer_format(self.kind, self.answer).done(text) or any(s in text for s in self.stop)

    def finalize(self, text: str) -> str:
        """A sample as kept: cut after its first stop string, then after the end of its answer."""
        cuts = [text.index(s) + len(s) for s in self.stop if s in text]
        return answer_format(self.kind, self.answer).truncate(text[: min(cuts)] if cuts else text)


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int  # generated tokens, stop token included


class Generator(Protocol):
    def generate(
        self,
        prompts: Sequence[List[int]],
        sampling: Sampling,
        keys: Sequence[str] | None = None,
        desc: str = "generate",
    ) -> List[List[Completion]]:
        """`sampling.n` completions for each prompt (token ids), in order; `keys` (question ids,
        default the positions) choose each prompt's random stream (`stream_seed`)."""
        ...

    def close(self) -> None:
        """Free the model (and accelerator memory)."""
        ...
