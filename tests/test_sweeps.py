"""sweeps/: one narrative per paper table, written by scripts/sweeps_md.py from the experiment
configs and tpt/paper.py (so it cannot drift from them), and every command in it runs valid cells."""
import importlib.util
import shlex

import pytest

from tests.conftest import ROOT
from tpt.config import validate
from tpt.experiments import TABLES, cells

spec = importlib.util.spec_from_file_location("sweeps_md", ROOT / "scripts" / "sweeps_md.py")
sweeps_md = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweeps_md)

COMMANDS = [(path.name, line.split("#")[0].strip()) for path in sorted((ROOT / "sweeps").glob("*.md"))
            for line in path.read_text().splitlines() if line.startswith("python launch.py -m ")]


def test_there_is_one_file_per_table_and_each_is_what_the_generator_writes():
    assert sorted(p.stem for p in (ROOT / "sweeps").glob("table*.md")) == TABLES
    for table in TABLES:
        assert (ROOT / "sweeps" / f"{table}.md").read_text() == sweeps_md.render(table), (
            f"sweeps/{table}.md is stale: run python scripts/sweeps_md.py")


@pytest.mark.parametrize("name,command", COMMANDS, ids=[f"{n}:{i}" for i, (n, _) in enumerate(COMMANDS)])
def test_every_command_runs_valid_cells(name, command):
    args = shlex.split(command)[3:]  # after `python launch.py -m`
    [experiment] = [a.split("=")[1] for a in args if a.startswith("+experiment=")]
    extra = [a for a in args if not a.startswith("+experiment=")]
    if experiment == "table8":
        extra.append("task.path=/data/leetcode")  # the unnamed LeetCode set: the user's to give
    for overrides in cells(experiment, *extra):
        from tpt import miniature
        from tpt.experiments import compose

        cfg = compose(overrides)
        if cfg.miniature:
            miniature.apply(cfg)
        validate(cfg)
