"""vLLM engine on CPU: one process ("uni", tpt's choice for one unpinned device) vs vLLM's default
(engine core and worker in two more processes), side by side: seconds to start, tokens/s, seconds
to close, the engine's CPU seconds (user and kernel), and whether both sample the same tokens.

    python benchmarks/engine_start.py [--repeats 2 --questions 32 --n 4 --max-new-tokens 200]
                                      [--kv-cache-gb G]

`--kv-cache-gb G` adds a row: tpt's engine with a KV cache of G GiB (backend.kv_cache_gb) instead of
the default, a quarter of the node's memory; the cache is allocated and zeroed at every start.

Each engine is started the way tpt starts it (tpt.backends.vllm.EngineProcess, a spawned process),
on the embedded model, bf16 where the CPU computes it natively. A cell of a sweep starts one engine
per model it evaluates, so on CPU start and close are paid for every round's eval.
"""

from __future__ import annotations

import argparse
import time

from figures import children_cpu_seconds, mean_sd  # this folder is on sys.path


def run(path, ids, keys, executor: str, kv_cache_gb, sampling: dict):
    """(ready s, tok/s, close s, user CPU s, kernel CPU s, samples) of one engine's life."""
    from tpt.backends.vllm import EngineProcess, engine_kwargs
    from tpt.models import resolve_dtype

    engine = engine_kwargs(
        path,
        dtype=resolve_dtype("auto"),
        revision=None,
        tensor_parallel_size=1,
        seed=0,
        cpu=True,
        gpu_memory_utilization=0.9,
        kv_cache_gb=kv_cache_gb,
        max_model_len=None,
        enforce_eager=None,
        in_process=executor != "vLLM default",
    )
    user, kernel = children_cpu_seconds()  # the engine's processes count once joined
    start = time.perf_counter()
    proc = EngineProcess(engine, {})
    ready = time.perf_counter() - start
    out, seconds, past = proc.generate(ids, keys, sampling)
    tokens = sum(n for row in out for _, n in row) + past
    start = time.perf_counter()
    proc.close()
    close = time.perf_counter() - start
    user_after, kernel_after = children_cpu_seconds()
    return (ready, tokens / seconds, close, user_after - user, kernel_after - kernel), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--kv-cache-gb", type=float, default=None)
    args = parser.parse_args()
    from generation_backends import prompts  # this folder is on sys.path

    path, _, _, ids, keys = prompts("embedded:smollm2-135m-instruct", args.questions)
    sampling = dict(n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0, stop=())
    rows = {"uni (tpt)": ("uni (tpt)", None), "vLLM default": ("vLLM default", None)}
    if args.kv_cache_gb:
        rows[f"uni (tpt), KV {args.kv_cache_gb:g} GiB"] = ("uni (tpt)", args.kv_cache_gb)
    figures, samples = {}, {}
    for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits all alike
        for row, (executor, kv_cache_gb) in rows.items():
            measured, out = run(path, ids, keys, executor, kv_cache_gb, sampling)
            figures.setdefault(row, []).append(measured)
            samples.setdefault(row, out)
            print(
                f"{row} #{repeat + 1}: ready {measured[0]:.1f} s, {measured[1]:.0f} tok/s, closed in "
                f"{measured[2]:.1f} s, CPU {measured[3]:.1f} s user + {measured[4]:.1f} s kernel",
                flush=True,
            )

    print(
        f"\n{args.questions} prompts x {args.n} samples, up to {args.max_new_tokens} new tokens; "
        f"mean ± sd over {args.repeats} starts\n"
    )
    print("| engine | ready (s) | tok/s | close (s) | CPU user (s) | CPU kernel (s) |\n|---|---|---|---|---|---|")
    for row, measured in figures.items():
        ready, rate, close, user, kernel = zip(*measured)
        print(
            f"| {row} | {mean_sd(ready, '.1f')} | {mean_sd(rate, '.0f')} | {mean_sd(close, '.1f')} | "
            f"{mean_sd(user, '.1f')} | {mean_sd(kernel, '.1f')} |"
        )
    same = all(out == samples["uni (tpt)"] for out in samples.values())
    print(f"\nsame samples from every row: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
