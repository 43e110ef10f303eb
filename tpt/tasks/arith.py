"""A bundled, offline generator of GSM8K-format word problems with tunable difficulty.

A person starts with some items and buys more `steps` times; the worked solution has one line per
step and ends with `#### N`. Difficulty grows with the number of steps and the operand ranges.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import List, Optional

from tpt.config import ConfigError, MathTaskConfig
from tpt.tasks.base import Problem, StandIn, TaskSpec, make_problem
from tpt.verify.math import answer_line


@dataclass
class ArithConfig:
    """The generator's settings: a start value, then `steps` purchases."""

    n_train: int = 1000
    n_test: int = 500
    min_steps: int = 1
    max_steps: int = 2
    start_min: int = 2
    start_max: int = 9
    operand_min: int = 1
    operand_max: int = 9


@dataclass
class ArithTaskConfig(MathTaskConfig):
    name: str = "arith"
    seed: Optional[int] = 1234  # the problem set (train and test)
    arith: ArithConfig = field(default_factory=ArithConfig)


_NAMES = ["Ava", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena"]
_ITEMS = ["apples", "pencils", "marbles", "stickers", "books", "cookies", "shells", "coins"]
_ORDINAL = ["Then", "After that", "Later", "Finally"]


def make_one(rng: random.Random, cfg) -> tuple[str, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    start = rng.randint(cfg.start_min, cfg.start_max)
    steps = rng.randint(cfg.min_steps, cfg.max_steps)
    buys = [rng.randint(cfg.operand_min, cfg.operand_max) for _ in range(steps)]
    sentences = [f"{name} has {start} {item}."]
    for i, b in enumerate(buys):
        lead = "" if i == 0 else _ORDINAL[min(i - 1, len(_ORDINAL) - 1)] + " "
        sentences.append(f"{lead}{name} buys {b} more {item}.")
    sentences.append(f"How many {item} does {name} have now?")
    lines, total = [f"{name} starts with {start} {item}."], start
    for b in buys:
        lines.append(f"After buying {b} more: {total} + {b} = {total + b}.")
        total += b
    lines.append(f"#### {total}")
    return " ".join(sentences), "\n".join(lines)


def generate(cfg, n: int, seed: int, split: str, rule: str = "hash") -> List[Problem]:
    """`rule`: the answer rule the solutions end in (task.answer): the same problems, stated as the
    rule reads them (a miniature of a `boxed` or `math` task sees `\\boxed{N}`)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        question, solution = make_one(rng, cfg)
        if rule != "hash":
            steps, last = solution.rsplit("\n", 1)
            solution = f"{steps}\n{answer_line(last.removeprefix('#### '), rule)}"
        out.append(make_problem(f"{split}-{i}", question, solution, f"arith[{split}] #{i}", rule))
    return out


def load(cfg) -> tuple[List[Problem], List[Problem]]:
    a = cfg.arith
    # Distinct seeds per split; test questions that also occur in train are dropped.
    train = generate(a, a.n_train, cfg.seed, "train", cfg.answer)
    seen = {p.question for p in train}
    test = [p for p in generate(a, a.n_test, cfg.seed + 1, "test", cfg.answer) if p.question not in seen]
    return train, test


def check(task) -> None:
    a = task.arith
    if not 1 <= a.min_steps <= a.max_steps:
        raise ConfigError(
            f"invalid config: task.arith needs 1 <= min_steps <= max_steps (got {a.min_steps}, {a.max_steps})"
        )
    if a.start_min > a.start_max or a.operand_min > a.operand_max:
        raise ConfigError("invalid config: task.arith needs min <= max for start and operand ranges")


# In a miniature, the bundled problems stand in for every math task: 96 train and 128 eval questions,
# and the paper's data sizes x 0.012 (its 2k of GSM8K's 7,473 train questions becomes 24 of 96).
TASK = TaskSpec(
    "arith",
    load,
    "math",
    ArithTaskConfig,
    check,
    bundled=True,
    prompt_tokens=250,
    stands_in=StandIn("math", 0.012, ("task.train_questions=96", "task.eval_questions=128")),
)
