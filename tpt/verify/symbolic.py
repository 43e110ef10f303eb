"""Symbolic answer checking with math-verify, in a worker process of its own.

math-verify (HF's checker: LaTeX parsed to sympy, equivalence by several strategies) bounds its work
with `signal.alarm`, which only works in a process's main thread: called from a thread it raises,
and with its timeouts off a pathological answer can hang a stage. So tpt runs it in a child process
(`serve`, JSON lines over pipes), where it runs in the main thread with its
own timeouts, and the parent adds a deadline of its own: a worker that misses it is killed, the
answer counts as wrong (`timeout` in its verdict) and the next call starts a fresh worker. This works
from any thread and from worker processes, daemonic ones included (a plain subprocess, not
multiprocessing).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Optional


class SymbolicJudge:
    """`judge(gold, answer)`: whether two LaTeX answers are equal (True/False), or None when the
    check did not finish within `timeout_s` (math-verify's own per-step limit) times three (parse
    gold, parse answer, compare) plus a second."""

    def __init__(self, timeout_s: int = 5):
        self.timeout_s = timeout_s
        self.proc: Optional[subprocess.Popen] = None
        self.lock = threading.Lock()  # one request in flight: calls from several threads take turns
        self.timeouts = 0
        self.started = False  # the worker has answered once (it imported sympy and math-verify)

    def _start(self) -> subprocess.Popen:
        command = f"from tpt.verify.symbolic import serve; serve({int(self.timeout_s)})"
        return subprocess.Popen(
            [sys.executable, "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def __call__(self, gold: str, answer: str, whole: bool = False) -> Optional[bool]:
        """`whole`: `answer` is a whole completion, from which math-verify extracts the answer itself
        (its LaTeX and expression extraction, as its README judges model output); else both are
        answers, each read as the content of a `\\boxed{}`."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start()
            self.proc.stdin.write(json.dumps({"gold": gold, "answer": answer, "whole": whole}) + "\n")
            self.proc.stdin.flush()
            # A worker that has not answered yet is still importing sympy: its first call gets longer.
            deadline = time.monotonic() + 3 * self.timeout_s + 1 + (0 if self.started else 30)
            while time.monotonic() < deadline:
                ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if ready:
                    line = self.proc.stdout.readline()
                    if line:
                        self.started = True
                        return json.loads(line)["equal"]
                    break  # the worker died: count the answer as timed out, start afresh next call
            self.timeouts += 1
            self._kill()
            return None

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.started = False

    def __getstate__(self) -> dict:  # a cell sent to another process takes the setting, not the worker
        return {"timeout_s": self.timeout_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["timeout_s"])

    def close(self) -> None:
        with self.lock:
            self._kill()

    def __del__(self):
        try:
            self._kill()
        except Exception:
            pass


def equal(gold: str, answer: str, timeout_s: int, whole: bool = False) -> bool:
    """math-verify's verdict on two LaTeX answers (each read as the content of a `\\boxed{}`), or with
    `whole` on a gold answer and a whole completion (math-verify extracts both itself)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    parsed_gold = parse(f"\\boxed{{{gold}}}", extraction_config=config, parsing_timeout=timeout_s)
    if whole:  # math-verify finds the answer in the completion itself: LaTeX or a plain expression
        parsed_answer = parse(
            answer, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=timeout_s
        )
    else:
        parsed_answer = parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=timeout_s)
    return bool(verify(parsed_gold, parsed_answer, timeout_seconds=timeout_s))


def serve(timeout_s: int) -> None:
    """The worker: one JSON request per line on stdin, one answer per line on stdout."""
    import logging

    logging.disable(logging.WARNING)  # math-verify logs every parse failure
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = equal(request["gold"], request["answer"], timeout_s, request.get("whole", False))
        except Exception:  # math-verify's own timeout or a parser error: not equal
            result = False
        sys.stdout.write(json.dumps({"equal": result}) + "\n")
        sys.stdout.flush()
