"""tpt's process settings (tpt/runtime.py) against Python's and glibc's defaults, side by side: wall
seconds of `python launch.py` for a small cell on the embedded model, and in that process the CPU
seconds in user space and in the kernel, and the seconds spent collecting garbage.

    python benchmarks/process_settings.py [--repeats 2]

Every row runs the same command; a row without a setting stubs out its function in
`tpt.runtime`. Only launch.py's own process is switched: the cell's training process applies both
settings in every row and counts in the wall seconds only.
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
CELL = [
    "backend=hf",
    "cache=off",
    "rounds=1",
    "task.eval_questions=8",
    "task.train_questions=8",
    "think.n=2",
    "eval.n=2",
    "eval.k=[1,2]",
    "data.size=4",
    "pruning=none",
    "think.max_new_tokens=32",
    "eval.max_new_tokens=32",
]
# row -> the settings of tpt/runtime.py it keeps
ROWS = {
    "defaults": (),
    "collector only": ("collect_garbage_less_often",),
    "allocator only": ("reuse_freed_memory",),
    "tpt (both)": ("collect_garbage_less_often", "reuse_freed_memory"),
}

# Runs launch.py in this interpreter with the collector timed through gc.callbacks; prints one JSON line.
PROBE = """
import atexit, gc, json, resource, runpy, sys, time
import tpt.runtime
for setting in ("collect_garbage_less_often", "reuse_freed_memory"):
    if setting not in sys.argv[1].split(","):
        setattr(tpt.runtime, setting, lambda: None)
spent, counts, began = [0.0], [0, 0, 0], {}
def timed(phase, info):
    if phase == "start":
        began["t"] = time.perf_counter()
    else:
        spent[0] += time.perf_counter() - began["t"]
        counts[info["generation"]] += 1
gc.callbacks.append(timed)
def report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("PROBE " + json.dumps({"gc_seconds": spent[0], "collections": counts, "user": usage.ru_utime,
                                 "system": usage.ru_stime}), flush=True)
atexit.register(report)
sys.argv = ["launch.py"] + sys.argv[2:]
runpy.run_path("launch.py", run_name="__main__")
"""


def run(settings, run_dir: Path) -> dict:
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(settings), *CELL, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    [line] = [l for l in res.stdout.splitlines() if l.startswith("PROBE ")]
    return {"wall": wall, **json.loads(line[len("PROBE ") :])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits every row alike
            for k, (row, settings) in enumerate(ROWS.items()):
                f = run(settings, Path(tmp) / f"{k}-{repeat}")
                figures.setdefault(row, []).append(f)
                print(
                    f"{row} #{repeat + 1}: {f['wall']:.1f} s, user {f['user']:.1f} s, kernel {f['system']:.1f} s, "
                    f"collecting {f['gc_seconds']:.2f} s, collections {f['collections']}",
                    flush=True,
                )

    print(
        f"\nlaunch.py {' '.join(CELL)}; mean ± sd over {args.repeats} runs; CPU seconds and collections "
        "of launch.py's process\n"
    )
    print(
        "| settings | wall (s) | user (s) | kernel (s) | collecting (s) | collections (young, middle, full) |\n"
        "|---|---|---|---|---|---|"
    )
    for row, runs in figures.items():
        cells = [
            mean_sd([r[key] for r in runs], fmt)
            for key, fmt in (("wall", ".1f"), ("user", ".1f"), ("system", ".1f"), ("gc_seconds", ".2f"))
        ]
        print(f"| {row} | {' | '.join(cells)} | {tuple(runs[-1]['collections'])} |")


if __name__ == "__main__":
    main()
