"""Attention on a CPU: tpt's hf backend sampling with transformers' SDPA attention (its default) and
with eager attention (tpt's choice on a CPU, tpt/models.py:attention_for), in fp32 and bf16, side
by side on the same prompts.

    python benchmarks/cpu_attention.py [--gsm8k ../shared/data/gsm8k] [--questions 8 --n 4
        --max-new-tokens 48] [--dtypes float32,bfloat16] [--repeats 2]

Prompts as in generation_backends.py (the arith task's by default: 2-shot, about 290 tokens each), all
in one batch, each encoded once and sampled n times (T=0.7). Model loading is excluded. The process
applies tpt's settings (tpt/runtime.py) first, as every tpt process does. Samples differ between
the two (another order of floating-point sums); tokens/s counts the tokens each kept.
"""

from __future__ import annotations

import argparse
import time

import torch
from figures import mean_sd  # this folder is on sys.path
from generation_backends import prompts


def sample(path, tok, ids, keys, n, max_new, dtype, attention):
    from transformers import AutoModelForCausalLM

    from tpt.backends import Sampling
    from tpt.backends.hf import HFGenerator

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation=attention)
    gen = HFGenerator(path, model=model, tokenizer=tok, batch_size=len(ids) * n)
    start = time.perf_counter()
    out = gen.generate(ids, Sampling(n=n, temperature=0.7, top_p=1.0, max_new_tokens=max_new, seed=0), keys)
    seconds = time.perf_counter() - start
    gen.close()
    return sum(c.n_tokens for cs in out for c in cs), seconds


def main():
    from tpt.runtime import tune_process

    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--gsm8k", default=None)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    path, tok, _, ids, keys = prompts(args.model, args.questions, args.gsm8k)
    print(
        f"{args.model}: {len(ids)} prompts ({sum(map(len, ids)) / len(ids):.0f} tokens on average) x {args.n} "
        f"samples, up to {args.max_new_tokens} new tokens, {torch.get_num_threads()} threads",
        flush=True,
    )
    runs = {}
    for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits every row alike
        for dtype in args.dtypes.split(","):
            for attention in ("sdpa", "eager"):
                tokens, seconds = sample(path, tok, ids, keys, args.n, args.max_new_tokens, dtype, attention)
                runs.setdefault((dtype, attention), []).append(tokens / seconds)
                print(f"{dtype} {attention} #{repeat + 1}: {tokens} tokens in {seconds:.1f} s", flush=True)

    print(f"\ntok/s, mean ± sd over {args.repeats} runs\n")
    print("| dtype | SDPA (transformers' default) | eager (tpt on a CPU) | eager / SDPA |\n|---|---|---|---|")
    for dtype in args.dtypes.split(","):
        sdpa, eager = runs[(dtype, "sdpa")], runs[(dtype, "eager")]
        ratio = sum(eager) / sum(sdpa)
        print(f"| {dtype} | {mean_sd(sdpa, '.0f')} | {mean_sd(eager, '.0f')} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
