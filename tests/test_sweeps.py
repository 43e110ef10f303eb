"""sweeps/: one narrative per paper table, written by scripts/sweeps_md.py from the experiment
configs and tpt/paper.py (so it cannot drift from them); its commands run the cells
tests/test_experiments.py checks."""

import importlib.util

from tests.conftest import ROOT
from tpt.experiments import TABLES

spec = importlib.util.spec_from_file_location("sweeps_md", ROOT / "scripts" / "sweeps_md.py")
sweeps_md = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweeps_md)

COMMANDS = [
    (path.name, line.split("#")[0].strip())
    for path in sorted((ROOT / "sweeps").glob("*.md"))
    for line in path.read_text().splitlines()
    if line.startswith("python launch.py -m ")
]


def test_there_is_one_file_per_table_and_each_is_what_the_generator_writes():
    assert sorted(p.stem for p in (ROOT / "sweeps").glob("table*.md")) == TABLES
    for table in TABLES:
        assert (ROOT / "sweeps" / f"{table}.md").read_text() == sweeps_md.render(table), (
            f"sweeps/{table}.md is stale: run python scripts/sweeps_md.py"
        )


def test_every_command_is_one_whose_cells_tests_check():
    """The commands run `+experiment=<table>` at the paper's setting or as its miniature: exactly the
    cells tests/test_experiments.py composes and validates (one composition, not two)."""
    forms = {f"python launch.py -m +experiment={t}{m}" for t in TABLES for m in ("", " miniature=true")}
    assert COMMANDS and {command for _, command in COMMANDS} == forms
