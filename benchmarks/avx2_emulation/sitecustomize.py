"""An estimate of the test suite on an AVX2-only CPU, on a CPU with AVX-512 (not part of tpt):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=benchmarks/avx2_emulation \
        CI=true .venv/bin/python -m pytest -q --durations=40

limits torch's and oneDNN's kernels to AVX2, and (this file, imported by every Python process started
with that PYTHONPATH) makes `tpt.models.cpu_has_native_bf16` answer False, so tpt picks fp32 as it
does on such a CPU. vLLM's own kernels, the clock and the memory stay this machine's: an estimate,
not an AVX2 machine. Calibrated at one commit, the AVX2-only EPYC measured there was about 1.75x slower
than this emulation on an AVX-512 EPYC (docs/benchmarks.md, "The emulation, calibrated")."""

import importlib.abc
import importlib.machinery
import sys


class _NoNativeBf16(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tpt.models":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.cpu_has_native_bf16 = lambda: False

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _NoNativeBf16())
