"""Hugging Face `generate` backend (`backend=hf`): the CPU default, also usable on one GPU.

Prompts are sorted by length (longest first: memory peaks early, padding stays small) and generated
in batches with left padding; each prompt is encoded once and sampled n times from its KV cache. A
sequence stops at EOS or once its answer is complete (`Sampling.finished`).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import List, Sequence

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from tpt.backends.base import Completion, Sampling, stream_seed
from tpt.models import load_causal_lm, load_tokenizer

log = logging.getLogger(__name__)


class AnswerDoneStop(StoppingCriteria):
    """Marks a sequence finished once `is_done(generated text)` (`Sampling.finished`), and remembers
    how many tokens it had then: generate pads the rest, and the pad token need not be an EOS."""

    def __init__(self, tokenizer, prompt_len: int, is_done):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.is_done = is_done
        self.done: torch.Tensor | None = None
        self.lengths: dict[int, int] = {}  # row -> generated tokens when it was marked done

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in torch.nonzero(~self.done).flatten().tolist():
            text = self.tokenizer.decode(input_ids[row, self.prompt_len :], skip_special_tokens=True)
            if self.is_done(text):
                self.done[row] = True
                self.lengths[row] = input_ids.shape[1] - self.prompt_len
        return self.done.clone()


def left_pad(rows: Sequence[List[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


class HFGenerator:
    def __init__(
        self,
        model_path: str,
        dtype: str = "auto",
        batch_size: int = 32,
        revision: str | None = None,
        model=None,
        tokenizer=None,
    ):
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path, revision)
        self.model = model if model is not None else load_causal_lm(model_path, dtype, revision)
        self.model.eval()
        self.batch_size = batch_size

    @torch.inference_mode()
    def generate(
        self,
        prompt_ids: Sequence[List[int]],
        sampling: Sampling,
        keys: Sequence[str] | None = None,
        desc: str = "generate",
    ) -> List[List[Completion]]:
        keys = [str(k) for k in keys] if keys is not None else [str(i) for i in range(len(prompt_ids))]
        # Longest prompts first: memory peaks at once and batches hold prompts of similar length.
        order = sorted(range(len(prompt_ids)), key=lambda q: -len(prompt_ids[q]))
        per_batch = max(1, self.batch_size // sampling.n)  # prompts per call, each sampled n times
        results: List[List[Completion]] = [[] for _ in prompt_ids]
        eos_ids = self._eos_ids()
        generated, start = 0, time.perf_counter()
        bar = tqdm(total=len(prompt_ids) * sampling.n, desc=desc, unit="seq", dynamic_ncols=True)
        for b in range(0, len(order), per_batch):
            batch = order[b : b + per_batch]
            # One stream per batch, from its questions: a rerun of the same batches reproduces them.
            torch.manual_seed(stream_seed(sampling.seed, "|".join(keys[q] for q in batch)))
            rows, stopped = self._sample([prompt_ids[q] for q in batch], sampling, eos_ids)
            for k, row in enumerate(rows):
                n_tok = _length_until_stop(row, eos_ids, stopped.get(k))
                text = self.tokenizer.decode(row[:n_tok], skip_special_tokens=True)
                results[batch[k // sampling.n]].append(Completion(text=sampling.finalize(text), n_tokens=n_tok))
                generated += n_tok
            bar.update(len(rows))
            bar.set_postfix(tok_s=f"{generated / (time.perf_counter() - start):.0f}")
        bar.close()
        log.info(
            "%s: %d sequences, %d tokens, %.0f tok/s",
            desc,
            len(prompt_ids) * sampling.n,
            generated,
            generated / max(time.perf_counter() - start, 1e-9),
        )
        return results

    def _sample(self, prompts: List[List[int]], sampling: Sampling, eos_ids: List[int]):
        """n sampled continuations of each prompt (rows q0s0, q0s1, ..., q1s0, ...), new tokens only,
        and for the rows the answer check stopped, how many tokens they had then.

        The prompt is encoded once and its KV cache repeated n times: on CPU the prompt (few-shot
        examples included) costs far more than the short answers, so this saves most of the work.
        """
        tok, dev, n = self.tokenizer, self.model.device, sampling.n
        ids, mask = left_pad(prompts, tok.pad_token_id)
        ids, mask = ids.to(dev), mask.to(dev)
        cache = None
        if ids.shape[1] > 1:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate computes them under left padding
            cache = self.model(
                input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True
            ).past_key_values
            if n > 1:
                cache.batch_repeat_interleave(n)
        ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        greedy = sampling.temperature == 0
        answer_stop = AnswerDoneStop(tok, ids.shape[1], sampling.finished)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            past_key_values=cache,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None,
            max_new_tokens=sampling.max_new_tokens,
            stopping_criteria=StoppingCriteriaList([answer_stop]),
            pad_token_id=tok.pad_token_id,
            eos_token_id=eos_ids,
        )
        return out[:, ids.shape[1] :].tolist(), answer_stop.lengths

    def _eos_ids(self) -> List[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def close(self) -> None:
        self.model = None  # its last reference: freed here, a Llama holding no cycles (tests/test_think.py)
        if torch.cuda.is_available():
            # Hand the GPU memory back before training starts, also what a cycle may still hold. Not on
            # CPU: a full collection walks every object of the process (0.2-0.5 s for each stage).
            gc.collect()
            torch.cuda.empty_cache()


def _length_until_stop(row: List[int], eos_ids: List[int], stopped_at: int | None = None) -> int:
    """Generated tokens up to and including the first EOS, or up to where the answer check stopped
    the row (the rest is padding)."""
    for i, t in enumerate(row[:stopped_at]):
        if t in eos_ids:
            return i + 1
    return len(row) if stopped_at is None else stopped_at
