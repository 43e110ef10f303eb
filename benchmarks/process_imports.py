"""What each kind of tpt process pays in imports before it does any work, side by side: wall and CPU
seconds of a fresh interpreter that imports what a cell, a training process and a vLLM engine import.

    python benchmarks/process_imports.py [--repeats 5]

A 1-round cell on a CPU starts one training process and two engines (round 0's model and the
trained one), so these seconds are paid several times per cell. The last line names the optional
packages installed here that transformers or vLLM import when present (scipy: scripts/install.sh
removes it, as nothing tpt installs needs it); run once with and once without one to see its cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

from figures import children_cpu_seconds, mean_sd  # this folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
# process -> what it imports (tpt/loop.py; tpt/training/worker.py and TRL; tpt/backends/vllm.py's engine)
PROCESSES = {
    "cell (launch.py)": "import tpt.loop",
    "training process": (
        "import tpt.training.worker\nfrom datasets import Dataset\nfrom trl import SFTConfig, SFTTrainer"
    ),
    "vLLM engine": "import vllm\nfrom vllm import LLM, SamplingParams\nimport vllm.v1.engine.core",
}
OPTIONAL = ("scipy", "sklearn", "torchvision", "torchaudio")


def timed(code: str):
    """(wall, CPU) seconds of a fresh interpreter running `code`."""
    before = children_cpu_seconds()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - start
    return wall, sum(children_cpu_seconds()) - sum(before)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if importlib.util.find_spec("vllm") is None:
        del PROCESSES["vLLM engine"]
    print(f"{'process':<18} {'wall s':>14} {'CPU s':>14}")
    for name, code in PROCESSES.items():
        timed(code)  # once untimed: the first run reads the files from disk
        runs = [timed(code) for _ in range(args.repeats)]
        print(
            f"{name:<18} {mean_sd([w for w, _ in runs], '.2f'):>14} {mean_sd([c for _, c in runs], '.2f'):>14}",
            flush=True,
        )
    present = [p for p in OPTIONAL if importlib.util.find_spec(p) is not None]
    print(f"optional packages installed: {', '.join(present) or 'none'} (of {', '.join(OPTIONAL)})")


if __name__ == "__main__":
    main()
