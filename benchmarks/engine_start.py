"""vLLM engine on CPU: one process ("uni", tpt's choice for one unpinned device) vs vLLM's default
(engine core and worker in two more processes), side by side: seconds to start, tokens/s, seconds
to close, and whether both sample the same tokens.

    python benchmarks/engine_start.py [--repeats 2 --questions 32 --n 4 --max-new-tokens 200]

Each engine is started the way tpt starts it (tpt.backends.vllm.EngineProcess, a spawned process),
on the embedded model, bf16 where the CPU computes it natively. A cell of a sweep starts one engine
per model it evaluates, so on CPU start and close are paid for every round's eval.
"""
from __future__ import annotations

import argparse
import time

from figures import mean_sd  # this folder is on sys.path


def run(path, ids, keys, executor: str, sampling: dict):
    from tpt.backends.vllm import EngineProcess, engine_kwargs
    from tpt.models import resolve_dtype

    engine = engine_kwargs(path, dtype=resolve_dtype("auto"), revision=None, tensor_parallel_size=1, seed=0, cpu=True,
                           gpu_memory_utilization=0.9, kv_cache_gb=None, max_model_len=None, enforce_eager=None,
                           in_process=executor != "vLLM default")
    start = time.perf_counter()
    proc = EngineProcess(engine, {})
    ready = time.perf_counter() - start
    out, seconds, past = proc.generate(ids, keys, sampling)
    tokens = sum(n for row in out for _, n in row) + past
    start = time.perf_counter()
    proc.close()
    return ready, tokens / seconds, time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    args = parser.parse_args()
    from generation_backends import prompts  # this folder is on sys.path

    path, _, _, ids, keys = prompts("embedded:smollm2-135m-instruct", args.questions)
    sampling = dict(n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0, stop=())
    figures, samples = {}, {}
    for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits both alike
        for executor in ("uni (tpt)", "vLLM default"):
            ready, rate, close, out = run(path, ids, keys, executor, sampling)
            figures.setdefault(executor, []).append((ready, rate, close))
            samples.setdefault(executor, out)
            print(f"{executor} #{repeat + 1}: ready {ready:.1f} s, {rate:.0f} tok/s, closed in {close:.1f} s", flush=True)

    print(f"\n{args.questions} prompts x {args.n} samples, up to {args.max_new_tokens} new tokens; "
          f"mean ± sd over {args.repeats} starts\n")
    print("| executor | ready (s) | tok/s | close (s) |\n|---|---|---|---|")
    for executor, rows in figures.items():
        ready, rate, close = zip(*rows)
        print(f"| {executor} | {mean_sd(ready, '.1f')} | {mean_sd(rate, '.0f')} | {mean_sd(close, '.1f')} |")
    same = samples["uni (tpt)"] == samples["vLLM default"]
    print(f"\nsame samples from both: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
