"""The generation interface every backend implements, and what both share: sampling settings,
completions, and the prompt rendering (so `hf` and `vllm` sample from the very same tokens)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Protocol, Sequence, Tuple

from tpt.prompt import Message
from tpt.verify import KINDS


SEED_STRIDE = 1_000_003  # a stage seed s and an index i give the random stream s * SEED_STRIDE + i


def stream_seed(seed: int, index: int) -> int:
    return seed * SEED_STRIDE + index


@dataclass(frozen=True)
class Sampling:
    n: int  # samples per prompt
    temperature: float  # 0 = greedy
    top_p: float
    max_new_tokens: int
    seed: int
    kind: str = "math"  # the task kind: when a completion is finished (tpt.verify.KINDS)
    stop: Tuple[str, ...] = ()  # further stop strings: a sample ends after the first one it writes

    @classmethod
    def from_cfg(cls, cfg, kind: str = "math") -> "Sampling":
        return cls(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                   seed=cfg.seed, kind=kind, stop=tuple(cfg.get("stop") or ()))

    def finished(self, text: str) -> bool:
        """Whether a sample may stop here: its answer is complete, or it wrote a stop string."""
        return KINDS[self.kind].done(text) or any(s in text for s in self.stop)

    def finalize(self, text: str) -> str:
        """A sample as kept: cut after its first stop string, then after the end of its answer."""
        cuts = [text.index(s) + len(s) for s in self.stop if s in text]
        return KINDS[self.kind].truncate(text[: min(cuts)] if cuts else text)


def render_prompts(tokenizer, conversations: Sequence[List[Message]]) -> List[List[int]]:
    """Token ids of each conversation under the model's chat template, ready for the reply."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


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
