"""Code verification: take the program from a completion, run it on the problem's tests in the
sandbox, and compare outputs as DeepMind's CodeContests tester does (docs/design.md, "Tasks,
verification and answer formats")."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm.auto import tqdm

from tpt.cache import digest
from tpt.verify.sandbox import Limits, RunResult, Sandbox, default_python
from tpt.verify.verdict import CodeVerdict

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[ \t]*$")
_PYTHON_TAGS = ("python", "python3", "py", "")
INTERPRETER_HEADROOM_MB = 64  # the interpreter's own address space on top of a problem's limit
_FLOAT_TOLERANCE = 1e-5
# Part of every verdict cache key: bump it when judging changes (how a program is built, run,
# compared or stopped early), so verdicts judged the old way are not reused.
# 2: tests go on after a timeout or resource failure until one passes (soft) or the budget is spent.
VERDICT_VERSION = 2

# LeetCode-style problems name a method of `class Solution`; each input line is a JSON object of
# keyword arguments and each output line the JSON of the return value.
_FUNCTION_HARNESS = """

import json as _tpt_json, sys as _tpt_sys
for _tpt_line in _tpt_sys.stdin:
    if _tpt_line.strip():
        print(_tpt_json.dumps(getattr(Solution(), {entry_point!r})(**_tpt_json.loads(_tpt_line))))
"""


def first_python_block(completion: str) -> Optional[Tuple[str, int]]:
    """The first closed fenced block tagged python/python3/py or untagged, and where it ends.

    Fences are whole lines (```tag to open, ``` to close), read in order, so the closing fence of
    a block in another language is never mistaken for an opening one.
    """
    lines = completion.splitlines(keepends=True)
    pos, i = 0, 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        pos += len(lines[i])
        i += 1
        if not opening:
            continue
        body: List[str] = []
        while i < len(lines) and not _is_closing(lines[i]):
            body.append(lines[i])
            pos += len(lines[i])
            i += 1
        if i == len(lines):
            return None  # never closed (cut off by the token limit)
        end = pos + len(lines[i].rstrip("\r\n"))
        pos += len(lines[i])
        i += 1
        if opening.group(1).lower() in _PYTHON_TAGS:
            return "".join(body).rstrip("\r\n"), end
    return None


def _is_closing(line: str) -> bool:
    fence = _FENCE.match(line)
    return bool(fence) and not fence.group(1)


def extract_code(completion: str) -> Optional[str]:
    block = first_python_block(completion)
    return block[0] if block else None


def code_block_done(completion: str) -> bool:
    """Generation may stop: the first python block is closed."""
    return first_python_block(completion) is not None


def truncate_after_code(completion: str) -> str:
    block = first_python_block(completion)
    return completion[: block[1]] if block else completion


def _number(token: str) -> Tuple[Optional[int], Optional[float]]:
    try:
        return int(token), None
    except ValueError:
        pass
    try:
        return None, float(token)
    except ValueError:
        return None, None


def _tokens_match(a: str, b: str) -> bool:
    ai, af = _number(a)
    bi, bf = _number(b)
    if (ai is None and af is None) or (bi is None and bf is None):
        return a == b  # at least one is not a number
    if ai is not None and bi is not None:
        return ai == bi
    return abs((af if af is not None else ai) - (bf if bf is not None else bi)) < _FLOAT_TOLERANCE


def outputs_match(output: str, expected: str) -> bool:
    got, want = output.lower().split(), expected.lower().split()
    if got == want:
        return True
    return len(got) == len(want) and all(_tokens_match(a, b) for a, b in zip(got, want))


def program_for(problem, code: str) -> str:
    """The file the sandbox runs: the code itself, or the code plus a driver for function problems."""
    if getattr(problem, "entry_point", None):
        return code + _FUNCTION_HARNESS.format(entry_point=problem.entry_point)
    return code


def code_id(code: str) -> str:
    return hashlib.sha1(code.strip().encode()).hexdigest()[:12]


class CodeVerifier:
    """Judges completions of code problems; one sandbox and worker pool per verifier.

    With a `cache` (tpt.cache.KeyedStore), a call's verdicts are stored under the digest of its
    programs, their problems' tests and limits and the interpreter: cells that share generations
    (Table 5's none, soft and gt rows sample the same think stage) judge them once, and alike."""

    def __init__(self, cfg, cache=None):
        self.cfg = cfg  # task.code
        self.cache = cache
        self.workers = cfg.workers or len(os.sched_getaffinity(0))
        self._sandbox: Optional[Sandbox] = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:  # created on first use: probing namespaces costs a process start
            required = self.cfg.get("isolation", "required") == "required"
            self._sandbox = Sandbox(slots=self.workers, python=self.cfg.python, required=required)
        return self._sandbox

    def limits(self, problem) -> Limits:
        cpu = (problem.time_limit_s or self.cfg.default_time_limit_s) * self.cfg.time_limit_scale
        memory = problem.memory_mb or self.cfg.default_memory_mb
        return Limits(
            cpu_s=cpu,
            memory_mb=memory + INTERPRETER_HEADROOM_MB,
            output_mb=self.cfg.max_output_mb,
            processes=self.cfg.max_processes,
        )

    def verify(self, pairs: Sequence[tuple], desc: str = "verify", reused: Optional[List[float]] = None) -> List[dict]:
        """Verdicts for (problem, completion) pairs, in order. Identical programs of one problem run once.
        Verdicts taken from the cache append to `reused` the seconds their judging took."""
        codes = [extract_code(text) for _, text in pairs]
        # One job per distinct (problem, program), in first-seen order; dicts keep the order.
        jobs = list({(p.id, code): (p, code) for (p, _), code in zip(pairs, codes) if code is not None}.values())
        results: Dict[tuple, dict] = {}
        if jobs and self.cache:
            verdicts, saved = self.cache.fetch_or_compute(
                self.verdict_key(jobs), lambda: self.judge_all(jobs, desc), desc, keep=_no_sandbox_error
            )
            if saved is not None and reused is not None:
                reused.append(saved)
        elif jobs:
            verdicts = self.judge_all(jobs, desc)
        if jobs:
            results = {(p.id, code): v for (p, code), v in zip(jobs, verdicts)}
        return [
            results[(p.id, code)] if code is not None else _verdict("no_code", None, 0, 0, len(p.tests))
            for (p, _), code in zip(pairs, codes)
        ]

    def judge_all(self, jobs: Sequence[Tuple[object, str]], desc: str) -> List[dict]:
        """Verdicts of (problem, program) jobs, in order, run on the worker pool."""
        self.sandbox  # noqa: B018 (a property: started here, before the worker threads could race to start one each)
        with ThreadPoolExecutor(self.workers) as pool:
            return list(
                tqdm(
                    pool.map(lambda job: self.judge(*job), jobs),
                    total=len(jobs),
                    desc=f"{desc}: run tests",
                    unit="prog",
                    dynamic_ncols=True,
                )
            )

    def verdict_key(self, jobs: Sequence[Tuple[object, str]]) -> str:
        """What decides the verdicts of these jobs: each program as run, its problem's tests and
        limits, the interpreter, and how tpt judges (VERDICT_VERSION)."""
        tests = {p.id: digest([[t.input, t.output] for t in p.tests]) for p, _ in jobs}
        return digest(
            {
                "version": VERDICT_VERSION,
                "python": self.cfg.python or default_python(),
                "jobs": [[program_for(p, code), tests[p.id], asdict(self.limits(p))] for p, code in jobs],
            }
        )

    def judge(self, problem, code: str) -> dict:
        """Run one program on a problem's tests (see the module docstring for when it stops)."""
        total = len(problem.tests)
        try:
            compile(code, "main.py", "exec")  # parses only: nothing of the program runs here
        except Exception:  # SyntaxError; ValueError (a null byte); RecursionError / MemoryError (absurd nesting)
            return _verdict("syntax_error", code, 0, 0, total)
        program, limits = program_for(problem, code), self.limits(problem)
        passed = run = 0
        spent = 0.0
        failure: Optional[str] = None
        for test in problem.tests:
            result: RunResult = self.sandbox.run(program, test.input, limits)
            run += 1
            spent += result.wall_s
            if result.status == "ok" and outputs_match(result.stdout, test.output):
                passed += 1
            else:
                failure = failure or ("wrong_answer" if result.status == "ok" else result.status)
                if result.status == "sandbox_error":  # says nothing about the program: stop, judge again later
                    break
            if failure and passed:
                break  # both verdicts known: not correct, and a soft positive
            if failure and spent >= self.cfg.program_budget_s:
                # Not correct; whether a later test passes (soft) is left unknown. Recorded, and rare:
                # it takes failures worth the whole budget (timeouts) before any test passes.
                return _verdict(failure, code, passed, run, total, budget_spent=True)
        return _verdict(failure or "passed", code, passed, run, total)


def _no_sandbox_error(verdicts: List[dict]) -> bool:
    """Verdicts worth keeping: a failure of the sandbox itself says nothing about the program."""
    return not any(v["verdict"] == "sandbox_error" for v in verdicts)


def _verdict(verdict: str, code: Optional[str], passed: int, run: int, total: int, budget_spent: bool = False) -> dict:
    """The fields every verifier returns (pred, correct, lenient_*), plus the code-specific ones."""
    return CodeVerdict(
        pred=code_id(code) if code is not None else None,
        correct=verdict == "passed",
        lenient_pred=None,
        lenient_correct=passed > 0,  # reported as lenient@1 beside the strict Pass@1
        passed_some=passed > 0,  # the `soft` pruning rule's test
        verdict=verdict,
        tests_passed=passed,
        tests_run=run,
        tests_total=total,
        budget_spent=budget_spent,
    ).as_row()
