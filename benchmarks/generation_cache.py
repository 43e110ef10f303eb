"""The same 4-cell sweep (pruning gt/none x two data sizes) without and with the generation cache.

    python benchmarks/generation_cache.py [--eval-questions 8 --train-questions 12 --n 2]

Prints, for each, the tokens actually generated, the generate calls made and the wall time. With
the cache, the baseline evaluation and round 1's samples of the base model are computed once per
sweep instead of once per cell.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tpt import loop
from tpt.backends.hf import HFGenerator
from tpt.compose import compose

CELLS = [
    ["pruning=gt", "data.size=4"],
    ["pruning=gt", "data.size=8"],
    ["pruning=none", "data.size=4"],
    ["pruning=none", "data.size=8"],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-questions", type=int, default=8)
    ap.add_argument("--train-questions", type=int, default=12)
    ap.add_argument("--n", type=int, default=2)
    args = ap.parse_args()

    counted = {"tokens": 0, "calls": 0}
    original = HFGenerator.generate

    def counting(self, prompts, sampling, keys=None, desc="generate"):
        out = original(self, prompts, sampling, keys, desc)
        counted["calls"] += 1
        counted["tokens"] += sum(c.n_tokens for cs in out for c in cs)
        return out

    HFGenerator.generate = counting
    common = [
        f"task.eval_questions={args.eval_questions}",
        f"task.train_questions={args.train_questions}",
        f"think.n={args.n}",
        f"eval.n={args.n}",
        f"eval.k=[1,{args.n}]",
    ]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("off", "on"):
            counted.update(tokens=0, calls=0)
            # Generations only: trained checkpoints are cached too, but that is not what this measures.
            cache = ["cache=off"] if mode == "off" else ["cache=on", f"cache.dir={tmp}/cache", "cache.trained=false"]
            start = time.perf_counter()
            for i, cell in enumerate(CELLS):
                loop.run_cell(compose(common + cache + cell), Path(tmp) / mode / f"cell{i}")
            results[mode] = (counted["tokens"], counted["calls"], time.perf_counter() - start)

    print(f"\n4-cell sweep ({', '.join(' '.join(c) for c in CELLS)})")
    print(f"{'cache':<8}{'generated tokens':>18}{'generate calls':>16}{'wall s':>9}")
    for mode, (tokens, calls, secs) in results.items():
        print(f"{mode:<8}{tokens:>18}{calls:>16}{secs:>9.1f}")


if __name__ == "__main__":
    main()
