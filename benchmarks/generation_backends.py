"""Generation throughput per backend (hf, vllm) on the same model, prompts and sampling.

    python benchmarks/generation_backends.py [--model DIR_OR_HUB_ID] [--backends hf,vllm]
        [--questions 64 --n 4 --max-new-tokens 128 --batch-size 64]

Prompts are the arith task's chat prompts. Prints, per backend, generated tokens, seconds and
tokens/s; for vLLM both the engine's own generation time and the whole call (spawning the
process and starting the engine included). Default model: the embedded SmolLM2-135M; vLLM needs a
CUDA GPU and the gpu extra (scripts/gpu_smoke.sh runs this there).
"""
from __future__ import annotations

import argparse
import time

from tpt.config import compose
from tpt.models import resolve
from tpt.prompt import PromptBuilder
from tpt.tasks import load_task
from tpt.backends import Sampling, check_backend, make_generator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--backends", default="hf")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    cfg = compose(["task=arith"])
    data = load_task(cfg.task)
    prompt = PromptBuilder(cfg.task, data.few_shot, system_role=True)
    conversations = [prompt(p.question) for p in data.train[: args.questions]]
    # As the loop samples: hf stops at the `#### N` line, vLLM at EOS or the limit (then both are cut).
    sampling = Sampling(n=args.n, temperature=0.8, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    model = resolve(args.model)
    print(f"model {args.model}: {len(conversations)} prompts x {args.n} samples, up to {args.max_new_tokens} tokens")
    for backend in args.backends.split(","):
        check_backend(backend)
        start = time.perf_counter()
        gen = make_generator(compose([f"backend={backend}", f"model.dtype={args.dtype}"]), model, None, args.batch_size)
        loaded = time.perf_counter()
        out = gen.generate(conversations, sampling, desc=backend)
        done = time.perf_counter()
        gen.close()
        tokens = sum(c.n_tokens for cs in out for c in cs)
        engine = getattr(gen, "last_generate_seconds", None) or done - loaded
        print(f"{backend}: {tokens} tokens, {engine:.1f} s generating -> {tokens / engine:.0f} tok/s; "
              f"{done - start:.1f} s in all (loading included) -> {tokens / (done - start):.0f} tok/s")


if __name__ == "__main__":
    main()
