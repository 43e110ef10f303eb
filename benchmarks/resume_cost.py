"""What a resume costs before it runs anything: checking the finished stages of a run directory whose
checkpoints are large, the full check (every file hashed, what each resume did before) beside the quick
one (sizes and modification times; a file is hashed when tpt reads it, tpt.rundir.Stage), in one run.

    python benchmarks/resume_cost.py [--gb 20] [--dir /tmp]

The run directory is made once: a finished train stage with a sparse checkpoint of `--gb` GB (zeros
hashed as any bytes are) and its DONE marker, written the way tpt publishes a stage.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tpt.io import manifest, write_json
from tpt.rundir import DONE, RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=20.0)
    parser.add_argument("--dir", default=None, help="where to make the run directory (default: the system's temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run = RunDir(Path(tmp) / "run")
        stage = run.stage(1, "train")
        (stage.dir / "model").mkdir(parents=True)
        weights = stage.dir / "model" / "model.safetensors"
        with weights.open("wb") as f:
            f.truncate(int(args.gb * 1e9))  # sparse: no disk used, every byte still read and hashed
        (stage.dir / "result.json").write_text('{"examples": 1}\n')
        start = time.perf_counter()
        write_json(stage.dir / DONE, {"stage": "train", "round": 1, "files": manifest(stage.dir)})
        published = time.perf_counter() - start
        rows = []
        for name, full in (("full (every file hashed: before)", True), ("quick (sizes and times: now)", False)):
            start = time.perf_counter()
            problems = stage.damage(full=full)
            rows.append((name, time.perf_counter() - start, problems))
        start = time.perf_counter()
        stage / "model"  # what reading the checkpoint costs now: hashed once, when it is used
        read = time.perf_counter() - start
    print(f"a finished stage with a {args.gb:g} GB checkpoint (sparse), on {os.cpu_count()} cores")
    print(f"publishing it (its manifest, hashed once): {published:.1f} s")
    for name, seconds, problems in rows:
        print(f"resume check, {name}: {seconds:.3f} s, {len(problems)} problem(s)")
    print(f"the checkpoint verified when it is read (stage / 'model'): {read:.1f} s")


if __name__ == "__main__":
    main()
