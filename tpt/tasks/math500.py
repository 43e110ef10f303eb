"""MATH: evaluated on MATH-500 (`HuggingFaceH4/MATH-500`, the 500 test problems of "Let's Verify
Step by Step"), trained on MATH's train split (`EleutherAI/hendrycks_math`, the maintained mirror of
the withdrawn `hendrycks/competition_math`; 7,500 problems over seven subject configs). MATH-500 is a
subset of MATH's test split, so no train problem is an eval problem.

Answers are LaTeX in `\\boxed{}`: MATH-500 rows carry theirs in `answer`, train rows at the end of
`solution`. Offline, `task.path` is a folder with `train.jsonl` (problem, solution) and `test.jsonl`
(problem, solution, answer, unique_id) in the hub's fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple

from tpt.config import MathTaskConfig
from tpt.tasks.base import Problem, TaskSpec, load_hub_split
from tpt.tasks.jsonl import FieldsConfig, read_file, rows, split_file, to_problems


@dataclass
class Math500TaskConfig(MathTaskConfig):
    """MATH: eval on MATH-500, train on MATH's train split."""

    name: str = "math500"
    answer: str = "math"
    train_hub_id: str = "EleutherAI/hendrycks_math"  # a maintained mirror of hendrycks/competition_math
    # its configs, one per subject, concatenated for the train split
    train_hub_configs: List[str] = field(
        default_factory=lambda: [
            "algebra",
            "counting_and_probability",
            "geometry",
            "intermediate_algebra",
            "number_theory",
            "prealgebra",
            "precalculus",
        ]
    )


TRAIN_FIELDS = FieldsConfig(question="problem", answer="solution")
TEST_FIELDS = FieldsConfig(question="problem", answer="answer", solution="solution", id="unique_id")
EVAL_HUB_ID = "HuggingFaceH4/MATH-500"


def load(cfg) -> Tuple[List[Problem], List[Problem]]:
    if cfg.path:
        root = Path(cfg.path).expanduser()
        train_path, test_path = split_file(root, "train"), split_file(root, "test")
        return (
            to_problems(rows(read_file(train_path), str(train_path), TRAIN_FIELDS), "train", cfg.answer, TRAIN_FIELDS),
            to_problems(rows(read_file(test_path), str(test_path), TEST_FIELDS), "test", cfg.answer, TEST_FIELDS),
        )
    hint = "Set task.path to a folder with train.jsonl and test.jsonl to run offline."
    train: List[Problem] = []
    for config in cfg.train_hub_configs:
        ds = load_hub_split(cfg.train_hub_id, config, "train", hint)
        train += to_problems(
            rows(ds, f"{cfg.train_hub_id}/{config}[train]", TRAIN_FIELDS), f"train-{config}", cfg.answer, TRAIN_FIELDS
        )
    hub_id = cfg.hub_id or EVAL_HUB_ID
    test = to_problems(
        rows(load_hub_split(hub_id, cfg.hub_config, "test", hint), f"{hub_id}[test]", TEST_FIELDS),
        "test",
        cfg.answer,
        TEST_FIELDS,
    )
    return train, test


TASK = TaskSpec("math500", load, "math", Math500TaskConfig, hub_train_questions=7500, prompt_tokens=200)
