"""Hugging Face `generate` backend: the CPU default, also usable on one GPU.

Prompts are rendered with the model's chat template, each repeated n times, sorted by length
(longest first, so memory peaks early and padding stays small) and generated in batches with
left padding. A sequence stops at EOS or once its `#### N` answer line is complete.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import List, Sequence

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from tpt.models import load_causal_lm, load_tokenizer
from tpt.prompt import Message
from tpt.think.base import Completion, Sampling
from tpt.verify.math import ANSWER_LINE_DONE, truncate_after_answer

log = logging.getLogger(__name__)


class AnswerLineStop(StoppingCriteria):
    """Marks a sequence finished once its generated text holds a complete `#### N` line."""

    def __init__(self, tokenizer, prompt_len: int):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in torch.nonzero(~self.done).flatten().tolist():
            text = self.tokenizer.decode(input_ids[row, self.prompt_len:], skip_special_tokens=True)
            if ANSWER_LINE_DONE.search(text):
                self.done[row] = True
        return self.done.clone()


def left_pad(rows: Sequence[List[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids, mask


class HFGenerator:
    def __init__(self, model_path: str, dtype: str = "auto", batch_size: int = 32,
                 revision: str | None = None, model=None, tokenizer=None):
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path, revision)
        self.model = model if model is not None else load_causal_lm(model_path, dtype, revision)
        self.model.eval()
        self.batch_size = batch_size

    def render(self, conversations: Sequence[List[Message]]) -> List[List[int]]:
        texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def generate(self, conversations: Sequence[List[Message]], sampling: Sampling,
                 desc: str = "generate") -> List[List[Completion]]:
        prompt_ids = self.render(conversations)
        jobs = [(q, s) for q in range(len(prompt_ids)) for s in range(sampling.n)]
        jobs.sort(key=lambda job: -len(prompt_ids[job[0]]))
        results: List[List[Completion | None]] = [[None] * sampling.n for _ in prompt_ids]
        tok = self.tokenizer
        eos_ids = self._eos_ids()
        dev = self.model.device
        generated, start = 0, time.perf_counter()
        bar = tqdm(total=len(jobs), desc=desc, unit="seq", dynamic_ncols=True)
        for b in range(0, len(jobs), self.batch_size):
            batch = jobs[b:b + self.batch_size]
            ids, mask = left_pad([prompt_ids[q] for q, _ in batch], tok.pad_token_id)
            # A fixed seed per batch makes a rerun reproduce the same samples.
            torch.manual_seed(sampling.seed * 1_000_003 + b)
            greedy = sampling.temperature == 0
            out = self.model.generate(
                input_ids=ids.to(dev), attention_mask=mask.to(dev),
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None,
                max_new_tokens=sampling.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([AnswerLineStop(tok, ids.shape[1])]),
                pad_token_id=tok.pad_token_id,
                eos_token_id=eos_ids,
            )
            new = out[:, ids.shape[1]:].tolist()
            for (q, s), row in zip(batch, new):
                n_tok = _length_until_stop(row, eos_ids)
                text = tok.decode(row[:n_tok], skip_special_tokens=True)
                results[q][s] = Completion(text=truncate_after_answer(text), n_tokens=n_tok)
                generated += n_tok
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{generated / (time.perf_counter() - start):.0f}")
        bar.close()
        log.info("%s: %d sequences, %d tokens, %.0f tok/s", desc, len(jobs), generated,
                 generated / max(time.perf_counter() - start, 1e-9))
        return results  # type: ignore[return-value]

    def _eos_ids(self) -> List[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def close(self) -> None:
        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _length_until_stop(row: List[int], eos_ids: List[int]) -> int:
    """Generated tokens up to and including the first EOS (the rest is padding)."""
    for i, t in enumerate(row):
        if t in eos_ids:
            return i + 1
    return len(row)

