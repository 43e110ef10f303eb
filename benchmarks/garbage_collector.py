"""Python's garbage collector in a cell's process: CPython's default thresholds vs tpt's
(tpt/runtime.py), side by side: wall seconds of `python launch.py` for a small cell on the embedded
model, and the seconds and number of collections in that process.

    python benchmarks/garbage_collector.py [--repeats 2]

Both run the same command; "default" stubs out `tpt.runtime.collect_garbage_less_often`. The cell's
training process and vLLM engine process (which call it too) count in the wall seconds only.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import mean_sd  # this folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
CELL = ["backend=hf", "cache=off", "rounds=1", "task.eval_questions=8", "task.train_questions=8", "think.n=2",
        "eval.n=2", "eval.k=[1,2]", "data.size=4", "pruning=none", "think.max_new_tokens=32", "eval.max_new_tokens=32"]

# Runs launch.py in this interpreter with the collector timed through gc.callbacks; prints one JSON line.
PROBE = """
import atexit, gc, json, runpy, sys, time
if sys.argv[1] == "default":
    import tpt.runtime
    tpt.runtime.collect_garbage_less_often = lambda: None
spent, counts, began = [0.0], [0, 0, 0], {}
def timed(phase, info):
    if phase == "start":
        began["t"] = time.perf_counter()
    else:
        spent[0] += time.perf_counter() - began["t"]
        counts[info["generation"]] += 1
gc.callbacks.append(timed)
atexit.register(lambda: print("GC " + json.dumps({"seconds": spent[0], "collections": counts}), flush=True))
sys.argv = ["launch.py"] + sys.argv[2:]
runpy.run_path("launch.py", run_name="__main__")
"""


def run(mode: str, run_dir: Path) -> dict:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PROBE, mode, *CELL, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    [line] = [l for l in res.stdout.splitlines() if l.startswith("GC ")]
    return {"wall": wall, **json.loads(line[3:])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits both alike
            for mode in ("default", "tpt"):
                f = run(mode, Path(tmp) / f"{mode}-{repeat}")
                figures.setdefault(mode, []).append(f)
                print(f"{mode} #{repeat + 1}: {f['wall']:.1f} s, collector {f['seconds']:.2f} s, "
                      f"collections {f['collections']}", flush=True)

    print(f"\nlaunch.py {' '.join(CELL)}; mean ± sd over {args.repeats} runs\n")
    print("| collector | wall (s) | collecting (s) | collections (young, middle, full) |\n|---|---|---|---|")
    for mode, runs in figures.items():
        print(f"| {mode} | {mean_sd([r['wall'] for r in runs], '.1f')} | {mean_sd([r['seconds'] for r in runs], '.2f')} "
              f"| {tuple(runs[-1]['collections'])} |")


if __name__ == "__main__":
    main()
