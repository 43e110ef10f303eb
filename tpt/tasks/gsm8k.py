"""GSM8K from the hub (`openai/gsm8k`, config `main`) or a local folder of train/test jsonl."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

from tpt.tasks.base import DataError, Problem, make_problem


def read_jsonl(path: Path, split: str) -> List[Problem]:
    if not path.is_file():
        raise DataError(f"{path}: no such file (task.path must hold train.jsonl and test.jsonl)")
    problems = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object with 'question' and 'answer'")
            problems.append(make_problem(f"{split}-{lineno - 1}", row.get("question"), row.get("answer"), where))
    return problems


def read_hub(hub_id: str, hub_config: str | None, split: str) -> List[Problem]:
    import datasets  # imported here: slow, and only the hub path needs it

    try:
        ds = datasets.load_dataset(hub_id, hub_config, split=split)
    except Exception as e:  # offline, unknown id, no access: say which dataset
        raise DataError(
            f"could not load dataset {hub_id!r} (config {hub_config!r}, split {split!r}) from the "
            f"Hugging Face hub: {e}. Set task.path to a local folder with train.jsonl/test.jsonl to run offline."
        ) from e
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
