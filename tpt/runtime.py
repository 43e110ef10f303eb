"""Settings of each Python process that runs tpt's work: a cell (launch.py, or its SLURM job), a job
array's task, a training process, a vLLM engine's process. Each calls `tune_process()` first thing.
docs/benchmarks.md ("Process settings") measures each against the defaults."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
from typing import Dict, Mapping

# Young objects allocated between two collections (CPython's default: 700).
YOUNG_COLLECTION_EVERY = 50_000
# glibc malloc (mallopt(3)): blocks this large or larger are mapped and unmapped on their own (glibc's
# default starts at 128 KiB and adapts up to this 32 MiB); free memory at the heap's top is handed
# back to the system past this much (default: twice the adaptive threshold).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's option numbers (<malloc.h>)
_MALLOPT = {
    "MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
}


# A training process: no block is mapped on its own, and freed memory stays in the heap (glibc reads these
# when the process starts). A training step allocates and frees the same large tensors again and again
# (a micro-batch's logits alone are hundreds of MB); mapped on their own (glibc maps every block over
# 32 MiB so, whatever the threshold), each is zero-filled and faulted in at every step
# (docs/benchmarks.md, "Training").
TRAINING_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
_USERS_MALLOC = None  # whether the user set glibc's malloc variables (known at the first tune_process)


def training_environment(env: Mapping[str, str]) -> Dict[str, str]:
    """A training process's environment: `TRAINING_MALLOC`, unless the user set glibc's variables."""
    if _USERS_MALLOC or platform.libc_ver()[0] != "glibc":
        return dict(env)
    return {**env, **TRAINING_MALLOC}


def tune_process() -> None:
    """Both settings below; calling it again changes nothing (launch.py does so for each cell)."""
    collect_garbage_less_often()
    reuse_freed_memory()


def collect_garbage_less_often() -> None:
    """CPython's default collects young objects every 700 allocations and, as the heap grows, walks all
    of it again and again: importing torch, transformers and TRL leaves half a million objects, and a
    tiny cell spent a fifth of its time collecting (docs/benchmarks.md, "Process settings"). Garbage in
    reference cycles waits for 50,000 allocations instead of 700; tensors and models, freed by
    reference counting, go at once as before."""
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_COLLECTION_EVERY), *older)


def reuse_freed_memory() -> None:
    """Keep freed tensor memory for the next step instead of handing it back to the system. A decoding
    step on a CPU allocates and frees KV-cache copies and activations of a few MiB, layer after layer;
    with glibc's defaults many of them are mapped fresh each time, and every page faults in again (the
    embedded model's sampling spent a third of its CPU time in the kernel: docs/benchmarks.md, "Process
    settings"). Set for this process (mallopt) and, through glibc's
    environment variables, for the processes it starts (vLLM's own workers too). Values a user
    already set stay; elsewhere than glibc (macOS), nothing changes."""
    global _USERS_MALLOC
    if _USERS_MALLOC is None:  # the first call, before tpt set any: the user's own, if set
        _USERS_MALLOC = any(name.startswith("MALLOC_") for name in os.environ)
    if any(name in os.environ for name in _MALLOPT) or platform.libc_ver()[0] != "glibc":
        return
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return
    for name, (option, value) in _MALLOPT.items():
        mallopt(option, value)
        os.environ[name] = str(value)
