"""Sandbox throughput: programs executed per second by the code verifier.

    python benchmarks/sandbox_throughput.py [--samples 200 --workers 2]

Judges `--samples` completions on the project's own problems (tests/data/code): a mix of correct,
wrong and crashing programs, each distinct so none is deduplicated. Prints program runs (one
program on one test input, each in its own sandboxed process) per second and samples judged
per second, for 1 worker and for `--workers`, under the sandbox's seccomp filter (an allow-list) and,
beside it, under the deny-list it replaced (kept here as the reference).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tpt.compose import compose
from tpt.tasks import load_task
from tpt.verify import sandbox
from tpt.verify.code import CodeVerifier
from tpt.verify.sandbox import probe_isolation

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "code"


# The filter before 2026-11-29: everything allowed but these (and clone into a new namespace).
DENY_LIST = (
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "fsopen",
    "fsmount",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "swapon",
    "swapoff",
    "reboot",
)


def write_deny_list_filter(path: Path) -> bool:
    import errno

    import pyseccomp as sc

    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENY_LIST:
        flt.add_rule(sc.ERRNO(errno.EPERM), name)
    for flag in sandbox.NAMESPACE_FLAGS:
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with open(path, "wb") as f:
        flt.export_bpf(f)
    return True


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
    allow_list = sandbox.write_seccomp_filter
    for name, write_filter in (("allow-list (now)", allow_list), ("deny-list (before)", write_deny_list_filter)):
        sandbox.write_seccomp_filter = write_filter
        for workers in sorted({1, args.workers}):
            cfg.task.code.workers = workers
            verifier = CodeVerifier(cfg.task.code)
            verifier.sandbox  # noqa: B018 (a property: start-up, namespace probe and filter, outside the timing)
            start = time.perf_counter()
            verdicts = verifier.verify(pairs, desc=f"{name}, {workers} worker(s)")
            took = time.perf_counter() - start
            runs = sum(v["tests_run"] for v in verdicts)
            passed = sum(v["correct"] for v in verdicts)
            print(
                f"{name:20s} workers={workers}: {len(pairs)} samples ({passed} correct), {runs} program runs in "
                f"{took:.1f} s: {runs / took:.1f} programs/s, {1000 * took / runs:.1f} ms a program run"
            )
    sandbox.write_seccomp_filter = allow_list


if __name__ == "__main__":
    main()
