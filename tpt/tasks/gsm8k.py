"""GSM8K from the hub (`openai/gsm8k`, config `main`) or a local folder of train/test jsonl."""
from __future__ import annotations

from pathlib import Path
from typing import List

from tpt.tasks.base import DataError, Problem, iter_jsonl, load_hub_split, make_problem

_OFFLINE = "Set task.path to a local folder with train.jsonl/test.jsonl to run offline."


def read_jsonl(path: Path, split: str) -> List[Problem]:
    if not path.is_file():
        raise DataError(f"{path}: no such file (task.path must hold train.jsonl and test.jsonl)")
    problems = []
    for i, (where, row) in enumerate(iter_jsonl(path)):
        problems.append(make_problem(f"{split}-{i}", row.get("question"), row.get("answer"), where))
    return problems


def read_hub(hub_id: str, hub_config: str | None, split: str) -> List[Problem]:
    ds = load_hub_split(hub_id, hub_config, split, _OFFLINE)
    return [
        make_problem(f"{split}-{i}", row.get("question"), row.get("answer"), f"{hub_id}[{split}] row {i}")
        for i, row in enumerate(ds)
    ]


def load(cfg) -> tuple[List[Problem], List[Problem]]:
    if cfg.path:
        root = Path(cfg.path).expanduser()
        if not root.is_dir():
            raise DataError(f"task.path={cfg.path!r} is not a directory")
        return read_jsonl(root / "train.jsonl", "train"), read_jsonl(root / "test.jsonl", "test")
    if not cfg.hub_id:
        raise DataError("task gsm8k needs task.path (local jsonl folder) or task.hub_id")
    return read_hub(cfg.hub_id, cfg.hub_config, "train"), read_hub(cfg.hub_id, cfg.hub_config, "test")
