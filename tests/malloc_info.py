"""glibc's malloc statistics (mallinfo(3)), for tests that count what malloc holds: tests/test_runtime.py's
probe and tests/fsdp_cpu_load.py."""

from __future__ import annotations

import ctypes


class Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_mallinfo2 = getattr(ctypes.CDLL(None), "mallinfo2", None)  # glibc 2.33+
if _mallinfo2 is not None:
    _mallinfo2.restype = Mallinfo2


def mallinfo2() -> Mallinfo2 | None:
    """This process's statistics now (summed over malloc's arenas); None before glibc 2.33."""
    return _mallinfo2() if _mallinfo2 is not None else None
