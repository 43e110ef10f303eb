"""GSM8K from the hub (`openai/gsm8k`, config `main`) or a local folder of train/test jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Tuple

from tpt.config import MathTaskConfig
from tpt.tasks.base import Problem, TaskSpec, iter_jsonl, make_problem, split_rows


def to_problems(rows: Iterable[Tuple[str, dict]], split: str) -> List[Problem]:
    return [
        make_problem(f"{split}-{i}", row.get("question"), row.get("answer"), where)
        for i, (where, row) in enumerate(rows)
    ]


def read_jsonl(path: Path, split: str) -> List[Problem]:
    return to_problems(iter_jsonl(path), split)


def read_split(cfg, split: str) -> List[Problem]:
    return to_problems(
        split_rows(
            cfg,
            split,
            lambda root, name: iter_jsonl(root / f"{name}.jsonl"),
            "a folder with train.jsonl and test.jsonl",
        ),
        split,
    )


def load(cfg) -> tuple[List[Problem], List[Problem]]:
    return read_split(cfg, "train"), read_split(cfg, "test")


TASK = TaskSpec("gsm8k", load, "math", MathTaskConfig, hub_train_questions=7473, prompt_tokens=200)
