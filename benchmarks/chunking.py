"""What chunked generation costs: a stage's generation (eval of the base model on GSM8K test
questions) in one chunk against smaller chunks, and with 1 against 2 engine replicas, side by side.

    python benchmarks/chunking.py [--gsm8k ../shared/data/gsm8k] [--questions 64 --n 4
        --max-new-tokens 256] [--chunk-sizes 64,16,4] [--replica-chunk-size 8] [--backend auto]

Each row is tpt's own stage generation (tpt.stages.generation.sample): prompts, the chunks through
the backend, verification and one atomic chunk file each, in a fresh run directory with the cache
off. Engine start-up is excluded (a warm-up call starts each configuration's engines first), so
what a smaller chunk costs is the batching it loses, its verification call and its file write.

Replicas: on this CPU the two replicas split its cores between them (one core each), so the same
hardware does the same work; the row shows what running two engines costs, not the speed-up that
replicas bring on a node with several GPUs, which stays unmeasured here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def run_stage(overrides, run_path: Path):
    """One eval stage's generation on the base model; its rows, tokens and seconds."""
    from tpt.cell import Cell
    from tpt.compose import compose
    from tpt.preflight import prepare
    from tpt.rundir import RunDir
    from tpt.stages import eval as eval_stage
    from tpt.stages.sampling import sample

    cfg = compose(overrides)
    cell = Cell.open(prepare(cfg), RunDir(run_path))
    job = eval_stage.job(cell, 0)
    start = time.perf_counter()
    rows, _, _ = sample(cell, job)
    return rows, sum(r["n_tokens"] for r in rows), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gsm8k", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k")
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--chunk-sizes", default="64,16,4")
    ap.add_argument("--replica-chunk-size", type=int, default=8)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    from tpt.backends import release_all, resolve_backend

    task = ["task=gsm8k", f"task.path={args.gsm8k}"] if (args.gsm8k / "test.jsonl").is_file() else ["task=arith"]
    backend = resolve_backend(args.backend)
    base = task + [
        f"backend={backend}",
        "cache=off",
        f"task.eval_questions={args.questions}",
        f"eval.n={args.n}",
        f"eval.max_new_tokens={args.max_new_tokens}",
        f"eval.k=[1,{args.n}]",
    ]
    sizes = [int(s) for s in args.chunk_sizes.split(",")]
    # (label, overrides, the row whose samples it is compared with)
    configs = [
        (f"chunk_size={s}" + (" (one chunk)" if s >= args.questions else ""), [f"eval.chunk_size={s}"], 0)
        for s in sizes
    ]
    if backend == "vllm":
        chunk = [f"eval.chunk_size={args.replica_chunk_size}"]
        configs += [
            (f"chunk_size={args.replica_chunk_size}, 1 replica", chunk + ["backend.replicas=1"], 0),
            (f"chunk_size={args.replica_chunk_size}, 2 replicas", chunk + ["backend.replicas=2"], len(configs)),
        ]
    print(
        f"{' '.join(task)}, backend={backend}: {args.questions} questions x {args.n} samples, up to "
        f"{args.max_new_tokens} new tokens"
    )
    results, samples = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, extra, compare_to) in enumerate(configs):
            replicas = [o for o in extra if o.startswith("backend.replicas")]
            # Warm-up: start this configuration's engines on one chunk of questions.
            run_stage(
                base + extra[:1] + replicas + [f"task.eval_questions={args.replica_chunk_size * 2}"],
                Path(tmp) / f"warm{i}",
            )
            rows, tokens, seconds = run_stage(base + extra, Path(tmp) / f"run{i}")
            samples.append([r["completion"] for r in rows])
            differ = sum(a != b for a, b in zip(samples[compare_to], samples[i]))
            results.append((label, tokens, seconds, "" if i == compare_to else f"{differ} vs row {compare_to + 1}"))
            if replicas:
                release_all()  # each replica configuration has its own engines; free them before the next
        release_all()
    one = results[0][1] / results[0][2]
    print(
        f"\n{'configuration':<34}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'vs one chunk':>14}{'samples that differ':>22}"
    )
    for row, (label, tokens, seconds, differ) in enumerate(results, 1):
        rate = tokens / seconds
        print(f"{row}. {label:<31}{tokens:>8}{seconds:>9.1f}{rate:>8.0f}{rate / one:>13.2f}x{differ:>22}")
    print(
        f"\n{len(samples[0])} samples per row. Samples differ where the engine's numerics depend on the batch "
        "(bf16 on this CPU): a chunk's size is part of what a cell samples, as HF's batch size is."
    )


if __name__ == "__main__":
    main()
