"""`python launch.py` as a user types it: errors before compute, and the embedded default end to end."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, compose
from tpt.config import ConfigError
from tpt.validate import validate


def launch(*args, timeout=600):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize(
    "override,message",
    [
        ("model=nope", "model=nope: no such model (conf/model/); the options: gemma2_2b_it,"),
        ("task=gsm9k", "task=gsm9k: no such task (conf/task/); did you mean task=gsm8k?"),
        ("data_size=3k", "data_size=3k: no such data_size (conf/data_size/); the options: 1k, 2k, 4k, 6k"),
        ("data.sizee=3", "data.sizee=3: data.sizee is not a config key; did you mean data.size?"),
        ("tsk=gsm8k", "tsk=gsm8k: tsk is not a config key or group; did you mean task?"),
        ("+think.temprature=1", "think.temprature is not a config key; did you mean think.temperature?"),
        (
            "rounds=two",
            "Error merging override rounds=two: Value 'two' of type 'str' could not be converted to Integer",
        ),
        ("pruning.min_votes=3", "pruning.min_votes is a setting of pruning majority, and this cell's pruning is gt"),
    ],
)
def test_bad_overrides_are_one_line_naming_the_fix(override, message, tmp_path):
    res = launch(override, f"hydra.run.dir={tmp_path}/run", "--cfg", "job")
    assert res.returncode == 2 and res.stderr.startswith("tpt: error: ") and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.parametrize(
    "mode",
    [
        [],
        ["-m"],
        ["-m", "--plan"],
        ["--plan"],
        ["-m", "miniature=true", "row=t3_2b"],
        ["-m", "cluster=slurm"],
        ["-m", "+experiment=table3", "miniature=true"],
    ],
)
def test_a_typo_is_the_same_line_however_the_command_runs(mode, tmp_path):
    """The one check runs before Hydra, the plan, the miniature or the SLURM launcher see the command."""
    res = launch(*mode, "think.temprature=0.1", f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.run.dir={tmp_path}/r")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip() == (
        "tpt: error: think.temprature=0.1: think.temprature is not a config key; did you mean think.temperature?"
    )
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "r").exists()  # nothing ran


def test_a_miniature_takes_the_bundled_problem_sets_seed_and_no_other_task_does():
    a, b = (compose(["+experiment=table3", "row=t3_2b", "miniature=true", f"task.seed={s}"]) for s in (1, 2))
    assert (a.task.name, a.task.seed, b.task.seed) == ("arith", 1, 2)
    from tpt.tasks import load_task

    assert [p.question for p in load_task(a.task).train] != [p.question for p in load_task(b.task).train]
    with pytest.raises(ConfigError, match="task.seed sets the problems of a generated task"):
        validate(compose(["task=gsm8k", "task.seed=1"]))


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.size=0", "data.size must be a positive number"),
        ("rounds=0", "rounds must be >= 1"),
        ("eval.k=[1,50]", "eval.k values must lie in 1..eval.n"),
        ("train.lr=-1", "train.lr must be > 0"),
        ("pruning=soft", r"pruning.strategy soft \(soft-positive\) prunes code tasks only \(got a math task\)"),
        ("model.lr=???", "model.lr must be given"),
        ("data.scale=0", "data.scale must be > 0"),
    ],
)
def test_impossible_values_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose([override]))


def test_impossible_value_fails_before_any_compute(tmp_path):
    res = launch("data.size=0", f"hydra.run.dir={tmp_path}/run")
    assert res.returncode != 0 and "data.size must be a positive number" in res.stderr
    assert not list((tmp_path / "run").glob("round_*")) and not (tmp_path / "run" / "run_config.yaml").exists()


def test_unknown_model_id_is_named(tmp_path):
    res = launch("model.id=/nonexistent/model", f"hydra.run.dir={tmp_path}/run")
    assert res.returncode != 0 and "cannot load model '/nonexistent/model'" in res.stderr


def test_malformed_data_file_is_named(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\nnot json\n')
    (tmp_path / "d" / "test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n')
    res = launch("task=gsm8k", f"task.path={tmp_path / 'd'}", f"hydra.run.dir={tmp_path}/run")
    assert res.returncode != 0 and f"{tmp_path / 'd' / 'train.jsonl'}:2: not valid JSON" in res.stderr


@pytest.mark.e2e
def test_a_2x2_multirun_gives_each_cell_its_own_directory(tiny_model_dir, tmp_path):
    from tests.conftest import tiny_overrides

    overrides = [
        o
        for o in tiny_overrides(tiny_model_dir, cache_dir=tmp_path / "cache")
        if not o.startswith(("name=", "data.size="))
    ]
    res = launch("-m", "pruning=gt,none", "data.size=2,3", *overrides, f"hydra.sweep.dir={tmp_path}/sweep")
    assert res.returncode == 0, res.stderr[-3000:]
    cells = sorted(p.name for p in (tmp_path / "sweep").iterdir() if (p / "metrics.jsonl").is_file())
    assert len(cells) == 4 and all("/" not in c for c in cells)
    for pruning in ("gt", "none"):
        for size in (2, 3):
            assert sum(f"data.size={size}" in c and f"pruning={pruning}" in c for c in cells) == 1
    # Baseline eval and round-1 think of the shared base model ran once, then came from the cache
    # (2 x 3 hits). With gt pruning the random model has no correct sample, so M_1 = M_0 and both gt
    # cells' round-1 eval is M_0's baseline again (2 more hits); the none cells train new models.
    logs = "".join((tmp_path / "sweep" / c / "launch.log").read_text() for c in cells)  # the cells' full logs
    assert logs.count("reusing cached generations") == 8


@pytest.mark.e2e
def test_a_cell_already_running_elsewhere_is_refused_untouched(tiny_model_dir, tmp_path):
    from filelock import FileLock

    from tests.conftest import tiny_overrides

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".metrics.jsonl.abc.tmp").write_text("another process is writing this")
    with FileLock(str(run_dir / ".lock")):  # as the other process holds it
        res = launch(*tiny_overrides(tiny_model_dir), f"hydra.run.dir={run_dir}")
    assert res.returncode == 2 and "is in use by another tpt process" in res.stderr
    assert (run_dir / ".metrics.jsonl.abc.tmp").exists() and not (run_dir / "run_config.yaml").exists()
