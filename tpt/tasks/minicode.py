"""A bundled, offline generator of small CodeContests-format problems: the code analogue of `arith`.

Each problem is a template (read two integers, a number, a word or a list from standard input;
print a simple function of it) with its own constant `k`: 11 templates x 8 constants = 88 distinct
statements, split between test and train so that no test statement is also a train one. Tests are
computed by the template's reference solution, which is also the problem's `solution` (source=human,
worked examples). The embedded SmolLM2-135M solves a few of them with two worked examples in the
prompt, so a code cell on the CPU can show TPT's effect
(the LeetCode-format problems in tests/data/code are beyond it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from tpt.config import CodeTaskConfig, ConfigError
from tpt.tasks.base import DataError, Problem, StandIn, TaskSpec, TestCase, make_code_problem


@dataclass
class MiniCodeConfig:
    """The generator's settings: 88 problems in all."""

    n_train: int = 56
    n_test: int = 32
    tests: int = 3  # per problem


@dataclass
class MiniCodeTaskConfig(CodeTaskConfig):
    name: str = "minicode"
    seed: Optional[int] = 4321  # the problem set: which templates and constants are test, which train
    minicode: MiniCodeConfig = field(default_factory=MiniCodeConfig)


TWO_INTS = "Read two integers a and b from one line"


@dataclass(frozen=True)
class Template:
    statement: str  # formatted with k
    make_input: Callable[[random.Random, int], str]
    answer: Callable[[str, int], str]  # the reference: (input, k) -> expected output
    solution: str  # the same reference as a Python program, formatted with k


def _two(rng: random.Random, k: int) -> str:
    return f"{rng.randint(-20, 50)} {rng.randint(-20, 50)}\n"


def _ints(text: str) -> List[int]:
    return [int(t) for t in text.split()]


def _word(rng: random.Random, k: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(k, k + 6))) + "\n"


def _number(rng: random.Random, k: int) -> str:
    return f"{rng.randint(1, 30)}\n"


def _list(rng: random.Random, k: int) -> str:
    values = [rng.randint(-9, 30) for _ in range(rng.randint(1, 6))]
    return f"{len(values)}\n{' '.join(map(str, values))}\n"


TEMPLATES = [
    Template(
        TWO_INTS + " and print a + b + {k}.",
        _two,
        lambda s, k: str(sum(_ints(s)) + k),
        "a, b = map(int, input().split())\nprint(a + b + {k})",
    ),
    Template(
        TWO_INTS + " and print a * {k} - b.",
        _two,
        lambda s, k: str(_ints(s)[0] * k - _ints(s)[1]),
        "a, b = map(int, input().split())\nprint(a * {k} - b)",
    ),
    Template(
        TWO_INTS + " and print the larger of the two plus {k}.",
        _two,
        lambda s, k: str(max(_ints(s)) + k),
        "a, b = map(int, input().split())\nprint(max(a, b) + {k})",
    ),
    Template(
        TWO_INTS + " and print the smaller of the two times {k}.",
        _two,
        lambda s, k: str(min(_ints(s)) * k),
        "a, b = map(int, input().split())\nprint(min(a, b) * {k})",
    ),
    Template(
        "Read an integer n and print n * n + {k}.",
        _number,
        lambda s, k: str(int(s) ** 2 + k),
        "n = int(input())\nprint(n * n + {k})",
    ),
    Template(
        "Read an integer n and print the remainder of n divided by {k}.",
        _number,
        lambda s, k: str(int(s) % k),
        "n = int(input())\nprint(n % {k})",
    ),
    Template(
        "Read one word and print it repeated {k} times, without spaces.",
        _word,
        lambda s, k: s.strip() * k,
        "s = input().strip()\nprint(s * {k})",
    ),
    Template(
        "Read one word and print its first {k} characters.",
        _word,
        lambda s, k: s.strip()[:k],
        "s = input().strip()\nprint(s[:{k}])",
    ),
    Template(
        "Read one word and print its length plus {k}.",
        _word,
        lambda s, k: str(len(s.strip()) + k),
        "s = input().strip()\nprint(len(s) + {k})",
    ),
    Template(
        "Read an integer n, then a line of n integers, and print their sum plus {k}.",
        _list,
        lambda s, k: str(sum(_ints(s)[1:]) + k),
        "n = int(input())\nvalues = list(map(int, input().split()))\nprint(sum(values) + {k})",
    ),
    Template(
        "Read an integer n, then a line of n integers, and print the largest of them times {k}.",
        _list,
        lambda s, k: str(max(_ints(s)[1:]) * k),
        "n = int(input())\nvalues = list(map(int, input().split()))\nprint(max(values) * {k})",
    ),
]


KS = range(2, 10)


def make_problem(rng: random.Random, template: Template, k: int, pid: str, tests: int) -> Problem:
    inputs = [template.make_input(rng, k) for _ in range(tests)]
    cases = [TestCase(i, template.answer(i, k) + "\n", "public") for i in inputs]
    return make_code_problem(
        pid, template.statement.format(k=k), cases, f"minicode {pid}", solution=template.solution.format(k=k) + "\n"
    )


def load(cfg) -> tuple[List[Problem], List[Problem]]:
    """Every (template, k) once, shuffled: the first n_test are the test split, the next n_train train."""
    m = cfg.minicode
    pairs = [(t, k) for t in TEMPLATES for k in KS]
    if m.n_test + m.n_train > len(pairs):
        raise DataError(
            f"task.minicode: n_train + n_test = {m.n_train + m.n_test} exceeds the {len(pairs)} "
            f"distinct problems it can write"
        )
    rng = random.Random(cfg.seed)
    rng.shuffle(pairs)
    test = [make_problem(rng, t, k, f"test-{i}", m.tests) for i, (t, k) in enumerate(pairs[: m.n_test])]
    train = [
        make_problem(rng, t, k, f"train-{i}", m.tests)
        for i, (t, k) in enumerate(pairs[m.n_test : m.n_test + m.n_train])
    ]
    return train, test


def check(task) -> None:
    m = task.minicode
    if min(m.n_train, m.n_test, m.tests) < 1:
        raise ConfigError(
            f"invalid config: task.minicode n_train, n_test and tests must be >= 1 (got {m.n_train}, "
            f"{m.n_test}, {m.tests})"
        )


# In a miniature, these problems stand in for every code task, with the paper's data sizes x 0.004
# (its 1k of CodeContests' 13,328 train problems becomes 4 of 54).
TASK = TaskSpec(
    "minicode",
    load,
    "code",
    MiniCodeTaskConfig,
    check,
    bundled=True,
    prompt_tokens=450,
    tests_per_problem=MiniCodeConfig.tests,  # its default (the plan's figure)
    stands_in=StandIn("code", 0.004),
)
