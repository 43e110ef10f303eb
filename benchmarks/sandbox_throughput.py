"""Sandbox throughput: programs executed per second by the code verifier.

    python benchmarks/sandbox_throughput.py [--samples 200 --workers 2]

Judges `--samples` completions on the project's own problems (tests/data/code): a mix of correct,
wrong and crashing programs, each distinct so none is deduplicated. Prints program runs (one
program on one test input, each in its own sandboxed process) per second and samples judged
per second, for 1 worker and for `--workers`.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tpt.compose import compose
from tpt.tasks import load_task
from tpt.verify.code import CodeVerifier
from tpt.verify.sandbox import probe_isolation

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "code"


def completions(problems, count):
    """Distinct programs (a numbered comment each): correct, wrong and crashing in turn."""
    out = []
    for i in range(count):
        p = problems[i % len(problems)]
        body = p.solution.removeprefix("```python\n").removesuffix("\n```")
        variant = [body, "print('wrong')", "raise SystemExit(1)"][i % 3]
        out.append((p, f"```python\n# variant {i}\n{variant}\n```"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    cfg = compose(["task=leetcode", f"task.path={DATA}"])
    data = load_task(cfg.task)
    pairs = completions(data.train + data.eval, args.samples)
    print(f"isolation: {probe_isolation()}, CPUs available: {len(os.sched_getaffinity(0))}")
    for workers in sorted({1, args.workers}):
        cfg.task.code.workers = workers
        verifier = CodeVerifier(cfg.task.code)
        verifier.sandbox  # start-up (namespace probe) outside the timing
        start = time.perf_counter()
        verdicts = verifier.verify(pairs, desc=f"{workers} worker(s)")
        took = time.perf_counter() - start
        runs = sum(v["tests_run"] for v in verdicts)
        passed = sum(v["correct"] for v in verdicts)
        print(f"workers={workers}: {len(pairs)} samples ({passed} correct), {runs} program runs in {took:.1f} s: "
              f"{runs / took:.1f} programs/s, {len(pairs) / took:.1f} samples/s")


if __name__ == "__main__":
    main()
