"""CodeContests (`deepmind/code_contests`) from the hub or from local parquet / jsonl files.

Rows have the hub dataset's fields; tpt reads these:
- `name`, `description` (the statement);
- `public_tests`, `private_tests`, `generated_tests`: each {"input": [str], "output": [str]};
- `solutions`: {"language": [int], "solution": [str]}: the first Python 3 one (language 3) is the
  human solution for `source=human` and few-shot turns;
- `time_limit`: {"seconds": int, "nanos": int} (missing or 0: task.code.default_time_limit_s);
- `memory_limit_bytes` (0: task.code.default_memory_mb).

Local files (task.path): per split, `<split>.jsonl`, or parquet files named `<split>*.parquet` in
the folder or in its `data/` subfolder (the hub repository's own layout, so a downloaded copy
of the dataset works as it is). Training problems come from `train`, eval problems from
task.code.eval_split (`test`); with task.code.drop_image_problems the eval problems whose
statement refers to an image (an `<image>` tag) are dropped: the paper evaluates on the 140 of
the 165 test problems without one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, List

from tpt.config import CodeTaskConfig
from tpt.tasks.base import DataError, Problem, TaskSpec, TestCase, iter_jsonl, make_code_problem, split_rows

log = logging.getLogger(__name__)

PYTHON3 = 3  # the `Language` enum of contest_problem.proto
IMAGE_TAG = "<image>"


def read_tests(row: dict, test_sets: Iterable[str], where: str, max_tests: int | None) -> List[TestCase]:
    tests: List[TestCase] = []
    for test_set in test_sets:
        block = row.get(f"{test_set}_tests") or {}
        if not isinstance(block, dict):
            raise DataError(f"{where}: field '{test_set}_tests' must be an object with 'input' and 'output' lists")
        inputs, outputs = block.get("input") or [], block.get("output") or []
        if len(inputs) != len(outputs):
            raise DataError(f"{where}: '{test_set}_tests' has {len(inputs)} inputs but {len(outputs)} outputs")
        tests += [TestCase(i, o, test_set) for i, o in zip(inputs, outputs)]
    return tests[:max_tests] if max_tests else tests


def python_solution(row: dict) -> str:
    sols = row.get("solutions") or {}
    for lang, code in zip(sols.get("language") or [], sols.get("solution") or []):
        if lang == PYTHON3:
            return code
    return ""


def time_limit(row: dict) -> float | None:
    limit = row.get("time_limit") or {}
    seconds = (limit.get("seconds") or 0) + (limit.get("nanos") or 0) / 1e9
    return seconds or None


def to_problem(row: dict, pid: str, where: str, code_cfg) -> Problem:
    if not isinstance(row, dict) or "description" not in row:
        raise DataError(f"{where}: not a CodeContests row (no 'description' field)")
    memory = row.get("memory_limit_bytes") or 0
    return make_code_problem(
        pid,
        row.get("description"),
        read_tests(row, code_cfg.tests, where, code_cfg.max_tests),
        where,
        solution=python_solution(row),
        time_limit_s=time_limit(row),
        memory_mb=int(memory) >> 20 or None,
    )


def _local_rows(root: Path, split: str):
    jsonl = root / f"{split}.jsonl"
    if jsonl.is_file():
        yield from iter_jsonl(jsonl)
        return
    files = sorted(root.glob(f"{split}*.parquet")) or sorted(root.glob(f"data/{split}*.parquet"))
    if not files:
        raise DataError(
            f"task.path={str(root)!r} has no {split}.jsonl and no {split}*.parquet files (also looked in data/)"
        )
    import pyarrow.parquet as pq  # a dependency of `datasets`

    for path in files:
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:
            raise DataError(f"{path}: not a readable parquet file ({e})") from e
        for i, row in enumerate(rows):
            yield f"{path} row {i}", row


def read_split(cfg, split: str) -> List[Problem]:
    rows = split_rows(
        cfg,
        split,
        _local_rows,
        "a folder with <split>.jsonl or <split>*.parquet files (the hub repository's data/ works as it is)",
    )
    return [
        to_problem(row, f"{split}-{i}-{row.get('name', '')}".rstrip("-"), where, cfg.code)
        for i, (where, row) in enumerate(rows)
    ]


def load(cfg) -> tuple[List[Problem], List[Problem]]:
    train = read_split(cfg, "train")
    test = read_split(cfg, cfg.code.eval_split)
    if cfg.code.drop_image_problems:
        kept = [p for p in test if IMAGE_TAG not in p.question]
        log.info(
            "codecontests: %d of %d %s problems kept (statements without images)",
            len(kept),
            len(test),
            cfg.code.eval_split,
        )
        test = kept
    return train, test


# tests_per_problem: public + private + generated tests, an order of magnitude (not counted from the hub
# data here); count yours and pass --assume tests_per_problem.codecontests=N, or cap them (task.code.max_tests)
TASK = TaskSpec(
    "codecontests", load, "code", CodeTaskConfig, hub_train_questions=13328, prompt_tokens=700, tests_per_problem=100
)
