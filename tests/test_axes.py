"""Each axis of the paper's ablations is extended in one place (docs/design.md, "Extending an axis"):
a pruning rule, a training strategy and a task, each written here as a researcher would write it in
one module, with its one YAML in a config folder of its own (Hydra's search path), then used through
everything that reads that axis: composition, validation, the plan, the miniature, the loop's code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import pytest

from tests.conftest import ROOT, compose
from tpt.config import ConfigError, MathTaskConfig, PruningConfig
from tpt.plan import plan_config, predicted
from tpt.pruning import RULES, PruningRule, kept_per_question, prune, rule, rule_of
from tpt.tasks import TASKS, Problem, TaskSpec, load_task, register
from tpt.training.strategies import STRATEGIES, TrainStrategy, strategy, strategy_of
from tpt.validate import validate

# ---- one module: a rule, a strategy and a task, as docs/design.md shows them -------------------------


@dataclass
class ShortestConfig(PruningConfig):
    strategy: str = "shortest_correct"
    slack: int = 0  # keep correct samples within this many tokens of the question's shortest correct one


class ShortestCorrect(PruningRule):
    """Correct samples no longer than the question's shortest correct one, plus `slack` tokens."""

    name, label = "shortest_correct", "shortest correct"
    settings = ShortestConfig

    def candidates(self, group):
        correct = [s for s in group if s["correct"]]
        shortest = min((s["n_tokens"] for s in correct), default=0)
        return [s for s in correct if s["n_tokens"] <= shortest + self.cfg.slack]


class Zero3(TrainStrategy):
    """A stub: DeepSpeed ZeRO-3 through accelerate (its config file is all it needs to launch)."""

    name = "zero3_stub"
    accelerate_config = "zero3_stub.yaml"  # under tpt/training/accelerate/, or an absolute path

    def state_bytes(self, shape, cfg) -> float:
        return 16 * shape.params / self.world_size(cfg)


@dataclass
class CountingConfig:
    n: int = 30  # questions per split


@dataclass
class CountingTaskConfig(MathTaskConfig):
    name: str = "counting"
    counting: CountingConfig = field(default_factory=CountingConfig)


def load_counting(cfg):
    def split(name: str, offset: int) -> List[Problem]:
        return [
            Problem(
                f"{name}-{i}", f"Count from 1 to {i + offset}: how many numbers?", f"#### {i + offset}", str(i + offset)
            )
            for i in range(cfg.counting.n)
        ]

    return split("train", 1), split("test", 1000)


def check_counting(task) -> None:
    if task.counting.n < 2:
        raise ConfigError(f"invalid config: task.counting.n must be >= 2 (got {task.counting.n})")


COUNTING = TaskSpec(
    "counting", load_counting, "math", CountingTaskConfig, check_counting, bundled=True, prompt_tokens=120
)

YAMLS = {
    "pruning/shortest_correct.yaml": "defaults:\n  - /pruning_schema/shortest_correct@_here_\n  - _self_\n"
    "strategy: shortest_correct\nslack: 2\n",
    "task/counting.yaml": "# @package _global_\ndefaults:\n  - /task_schema/counting@task\n  - _self_\n"
    "task:\n  name: counting\n  eval_questions: 8\ndata:\n  size: 4\n",
}


@pytest.fixture
def extended(tmp_path, monkeypatch):
    """The three registered, as their module's decorators and TASK do, and their YAML on Hydra's search
    path; the registries are restored after the test."""
    monkeypatch.setitem(RULES, ShortestCorrect.name, ShortestCorrect)
    rule(ShortestCorrect)
    monkeypatch.setitem(STRATEGIES, Zero3.name, Zero3())
    strategy(Zero3)
    monkeypatch.setitem(TASKS, COUNTING.name, COUNTING)
    register(COUNTING)
    for name, text in YAMLS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "zero3_stub.yaml").write_text("distributed_type: DEEPSPEED\n")
    monkeypatch.setattr(Zero3, "accelerate_config", str(tmp_path / "zero3_stub.yaml"))
    return [f"hydra.searchpath=[file://{tmp_path}]"]


def test_a_new_pruning_rule_with_a_parameter(extended):
    cfg = compose(extended + ["pruning=shortest_correct"])
    validate(cfg)
    pruner = rule_of(cfg.pruning)
    assert pruner.cfg.slack == 2  # from its YAML, typed by its own schema
    samples = [
        {"qid": "a", "completion": f"a{n}", "correct": ok, "n_tokens": n}
        for n, ok in ((10, True), (12, True), (13, True), (5, False))
    ]
    assert kept_per_question(pruner, samples) == {"a": 2}
    assert prune(samples, pruner, size=1, seed=0)[1]["strategy"] == "shortest_correct"
    assert (
        "expected_available"
        in plan_config(
            compose(extended + ["pruning=shortest_correct", "model=gemma2_2b_it", "task=gsm8k"]), [], _assume(), None
        ).figures
    )
    with pytest.raises(Exception, match="slak"):  # a misspelt parameter fails when composed
        compose(extended + ["pruning=shortest_correct", "pruning.slak=1"])


def test_a_new_training_strategy(extended, tmp_path):
    cfg = compose(extended + ["model.train_strategy=zero3_stub", "model.gpus=4", "train.global_batch_size=16"])
    validate(cfg)
    cmd, _ = strategy_of(cfg.train).command(tmp_path / "job.json", cfg.train, cpu=False, env={})
    assert cmd[cmd.index("--config_file") + 1] == str(tmp_path / "zero3_stub.yaml")
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    gemma = compose(extended + ["model=gemma2_9b_it", "task=gsm8k", "cluster=slurm", "backend=vllm"])
    sharded = compose(
        extended
        + ["model=gemma2_9b_it", "task=gsm8k", "cluster=slurm", "backend=vllm", "model.train_strategy=zero3_stub"]
    )
    assert predicted(sharded)["train_memory_gb"] < predicted(gemma)["train_memory_gb"]  # its own memory terms
    with pytest.raises(ConfigError, match="train.strategy=zero3_stub needs >= 1 process per node"):
        validate(compose(extended + ["model.train_strategy=zero3_stub"]))  # the CPU default has no GPUs


def test_a_new_task(extended):
    cfg = compose(extended + ["task=counting", "task.counting.n=12"])
    validate(cfg)
    data = load_task(cfg.task)
    assert (len(data.train), len(data.eval)) == (12, 8)
    assert plan_config(cfg, [], _assume(), None).figures["train_questions"] == 12  # bundled: the plan reads it
    with pytest.raises(ConfigError, match="task.counting.n must be >= 2"):
        validate(compose(extended + ["task=counting", "task.counting.n=1"]))
    mini = compose(extended + ["task=counting", "miniature=true"])  # a math task: the bundled arith stands in
    assert (mini.task.name, mini.miniature_of) == ("arith", "counting")


def _assume():
    from tpt.plan import ASSUMPTIONS

    return dict(ASSUMPTIONS)


# ---- where each name lives ---------------------------------------------------------------------------


def _mentions(name: str) -> List[str]:
    """Files of tpt/, hydra_plugins/, launch.py and conf/ that use `name` as a value: a Python string
    literal equal to it (docstrings and comments may talk about it) or a YAML value equal to it."""
    import ast

    import yaml

    def yaml_values(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from yaml_values(value)
        elif isinstance(node, list):
            for item in node:
                yield from yaml_values(item)
        else:
            yield node

    found = []
    for path in [
        *ROOT.joinpath("tpt").rglob("*.py"),
        *ROOT.joinpath("hydra_plugins").rglob("*.py"),
        ROOT / "launch.py",
    ]:
        literals = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        if name in literals:
            found.append(path)
    for path in ROOT.joinpath("conf").rglob("*.yaml"):
        values = set(yaml_values(yaml.safe_load(path.read_text())))
        if name in values or any(isinstance(v, str) and v.startswith(f"{name}@") for v in values):
            found.append(path)
    return sorted(str(p.relative_to(ROOT)) for p in found)


@pytest.mark.parametrize(
    "name, home",
    [
        ("majority", ["conf/pruning/majority.yaml", "tpt/pruning.py"]),
        ("length_cap", ["conf/pruning/length_cap.yaml", "tpt/pruning.py"]),
        ("ddp", ["tpt/training/strategies.py"]),
        ("arith", ["conf/config.yaml", "conf/task/arith.yaml", "tpt/tasks/arith.py"]),  # the default task
        ("minicode", ["conf/task/minicode.yaml", "tpt/tasks/minicode.py"]),
        ("math500", ["conf/task/math500.yaml", "tpt/tasks/math500.py"]),
        ("jsonl", ["conf/task/jsonl.yaml", "tpt/tasks/jsonl.py"]),
    ],
)
def test_a_name_is_found_only_in_its_own_module_and_yaml(name, home):
    assert _mentions(name) == sorted(home)


def test_every_task_yaml_sets_only_its_task_sampling_and_scale():
    """What a task's YAML may set beyond `task`, `think` and `eval` is what a miniature keeps of the cell
    (tpt.miniature.CELL_KEYS): anything else would silently come with the stand-in task."""
    import yaml

    from tpt.miniature import CELL_KEYS

    def leaves(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    for path in sorted(Path(ROOT / "conf" / "task").glob("*.yaml")):
        keys = [
            k
            for k in leaves(yaml.safe_load(path.read_text()))
            if k.split(".")[0] not in ("defaults", "task", "think", "eval")
        ]
        assert set(keys) <= set(CELL_KEYS), (path.name, keys)
