"""tpt/runtime.py: the settings every tpt process applies first thing, checked in fresh processes (the
test process itself is already tuned by conftest)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Mallocs a 16 MiB block and reports how much of it glibc mapped on its own (mallinfo2's hblkhd),
# after tune_process() or not, and what a child process would inherit.
PROBE = """
import ctypes, gc, json, os, sys
if sys.argv[1] == "tuned":
    from tpt.runtime import tune_process
    tune_process()
from tests.malloc_info import mallinfo2
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
before = mallinfo2().hblkhd
block = libc.malloc(16 << 20)
mapped = mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"mapped": mapped, "young_every": gc.get_threshold()[0],
                  "env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}))
"""

libc, version = platform.libc_ver()
glibc_only = pytest.mark.skipif(
    libc != "glibc" or tuple(map(int, version.split(".")[:2])) < (2, 33),
    reason="glibc's malloc settings (tpt/runtime.py), read back with mallinfo2 (glibc 2.33+)",
)


def probe(mode: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # conftest tuned this one
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, env={**clean, **env}, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


@glibc_only
def test_a_tuned_process_keeps_blocks_of_a_few_mib_on_its_heap_and_its_children_inherit_that():
    default, tuned = probe("default"), probe("tuned")
    assert default["mapped"] >= 16 << 20 and default["young_every"] < 50_000 and default["env"] == {}
    assert tuned["mapped"] == 0 and tuned["young_every"] == 50_000
    assert tuned["env"] == {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


@glibc_only
def test_malloc_settings_a_user_made_stay_as_they_are():
    mine = probe("tuned", MALLOC_MMAP_THRESHOLD_=str(1 << 20))
    assert mine["mapped"] >= 16 << 20 and mine["env"] == {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
