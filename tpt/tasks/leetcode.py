"""LeetCode-style problems from a local folder (train.jsonl, test.jsonl) or a hub dataset with the
same fields. One problem per line:

    {"id": "two-sum",                       # optional; default <split>-<line>
     "question": "Given an array nums ...",  # the statement shown to the model
     "tests": [{"input": "...", "output": "..."}, ...],
     "entry_point": "twoSum",                # optional, see below
     "starter_code": "class Solution: ...",  # optional; shown after the statement
     "solution": "class Solution: ...",      # optional plain Python: source=human and few-shot turns
     "time_limit_s": 2.0,                    # optional; default task.code.default_time_limit_s
     "memory_mb": 256}                       # optional; default task.code.default_memory_mb

Two kinds of problems:
- without `entry_point`, a program reads the test input on stdin and writes its answer to stdout;
- with `entry_point`, the program defines `class Solution` with that method (as on LeetCode).
  Each line of a test input is a JSON object of keyword arguments for one call, and each line of
  the expected output the JSON (`json.dumps`) of its return value, e.g.
  {"input": "{\"nums\": [2, 7, 11, 15], \"target\": 9}\n", "output": "[0, 1]\n"}.
Outputs are compared as for CodeContests (whitespace tokens, floats to 1e-5).
"""

from __future__ import annotations

from typing import List

from tpt.config import CodeTaskConfig
from tpt.tasks.base import DataError, Problem, TaskSpec, TestCase, iter_jsonl, make_code_problem, split_rows


def to_problem(row: dict, default_id: str, where: str, code_cfg) -> Problem:
    tests = row.get("tests")
    if not isinstance(tests, list) or not all(isinstance(t, dict) and {"input", "output"} <= set(t) for t in tests):
        raise DataError(f'{where}: field \'tests\' must be a list of {{"input": ..., "output": ...}} objects')
    cases = [TestCase(t["input"], t["output"], t.get("kind", "public")) for t in tests]
    if code_cfg.max_tests:
        cases = cases[: code_cfg.max_tests]
    solution = row.get("solution") or ""
    if not isinstance(solution, str):
        raise DataError(f"{where}: field 'solution' must be a string of Python code")
    question, entry_point = row.get("question"), row.get("entry_point")
    if isinstance(question, str) and entry_point:
        question += f"\n\nImplement the method `{entry_point}` of `class Solution`."
    if isinstance(question, str) and row.get("starter_code"):
        question += f"\n\nStarter code:\n{row['starter_code'].strip()}"
    return make_code_problem(
        str(row.get("id") or default_id),
        question,
        cases,
        where,
        solution=solution,
        time_limit_s=row.get("time_limit_s"),
        memory_mb=row.get("memory_mb"),
        entry_point=entry_point,
    )


def read_split(cfg, split: str) -> List[Problem]:
    rows = split_rows(
        cfg, split, lambda root, name: iter_jsonl(root / f"{name}.jsonl"), "a folder with train.jsonl and test.jsonl"
    )
    problems = [to_problem(row, f"{split}-{i}", where, cfg.code) for i, (where, row) in enumerate(rows)]
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise DataError(f"{split}: problem ids must be unique")
    return problems


def load(cfg) -> tuple[List[Problem], List[Problem]]:
    return read_split(cfg, "train"), read_split(cfg, cfg.code.eval_split)


TASK = TaskSpec("leetcode", load, "code", CodeTaskConfig, prompt_tokens=500, tests_per_problem=20)  # tests: assumed
