"""Think-stage throughput: tpt's HF backend beside bare `model.generate` on the same prompts.

    python benchmarks/think_throughput.py [--questions 32 --n 4 --batch-size 64 --max-new-tokens 48]

Prints generated tokens, wall time and tokens/s for each. tpt's backend adds length sorting and an
answer-line stop; bare generate pads with the tokenizer and runs every sequence to EOS or the limit.
"""

from __future__ import annotations

import argparse
import time

import torch

from tpt.backends import Sampling
from tpt.backends.hf import HFGenerator
from tpt.compose import compose
from tpt.models import load_causal_lm, load_tokenizer, resolve
from tpt.prompt import PromptBuilder
from tpt.tasks import load_task


def bare_generate(model, tok, texts, n, batch_size, max_new_tokens, temperature, seed):
    tok.padding_side = "left"
    eos = tok.eos_token_id
    per_batch = max(1, batch_size // n)
    tokens = 0
    for b in range(0, len(texts), per_batch):
        enc = tok(texts[b : b + per_batch], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seed + b)
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=None,
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            pad_token_id=tok.pad_token_id,
        )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            tokens += row.index(eos) + 1 if eos in row else len(row)
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.8)
    args = ap.parse_args()

    cfg = compose([f"task.train_questions={args.questions}"])
    data = load_task(cfg.task)
    prompt = PromptBuilder(cfg.task, data.few_shot, system_role=True)
    conversations = [prompt(p.question) for p in data.train]
    path = resolve(args.model)
    model, tok = load_causal_lm(path), load_tokenizer(path)
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    prompt_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) / len(texts)
    print(
        f"{len(texts)} prompts (mean {prompt_tokens:.0f} tokens) x n={args.n}, batch {args.batch_size}, "
        f"max_new_tokens {args.max_new_tokens}, {torch.get_num_threads()} threads"
    )

    start = time.perf_counter()
    gen = HFGenerator(path, batch_size=args.batch_size, model=model, tokenizer=tok)
    out = gen.generate(conversations, Sampling(args.n, args.temperature, 1.0, args.max_new_tokens, 0), desc="tpt")
    tpt_s = time.perf_counter() - start
    tpt_tokens = sum(c.n_tokens for cs in out for c in cs)

    start = time.perf_counter()
    bare_tokens = bare_generate(model, tok, texts, args.n, args.batch_size, args.max_new_tokens, args.temperature, 0)
    bare_s = time.perf_counter() - start

    print(f"{'backend':<22}{'tokens':>8}{'seconds':>10}{'tok/s':>9}{'seq/s':>8}")
    seqs = len(texts) * args.n
    for name, tokens, secs in (("tpt think (hf)", tpt_tokens, tpt_s), ("bare HF generate", bare_tokens, bare_s)):
        print(f"{name:<22}{tokens:>8}{secs:>10.1f}{tokens / secs:>9.1f}{seqs / secs:>8.2f}")


if __name__ == "__main__":
    main()
