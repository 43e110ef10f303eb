"""Every command in sweeps/*.md composes into valid cells."""
import re
import shlex

import pytest
import itertools

from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import ROOT, compose
from tpt.config import validate

COMMANDS = [(path.name, line) for path in sorted((ROOT / "sweeps").glob("*.md"))
            for line in path.read_text().splitlines() if line.startswith("python launch.py -m ")]


def cells(command: str):
    """The cells a multirun of `command` runs: the product of its sweep overrides (Hydra's public parser)."""
    args = shlex.split(command)[3:]  # after `python launch.py -m`
    overrides = OverridesParser.create().parse_overrides(args)
    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
               else [o.input_line] for o in overrides]
    return [list(cell) for cell in itertools.product(*choices)]


def test_every_sweep_file_has_a_paper_and_a_cpu_command():
    files = {name for name, _ in COMMANDS}
    assert files == {p.name for p in (ROOT / "sweeps").glob("*.md") if p.name != "README.md"}
    for name in files:
        assert any("task=gsm8k" in c or "task=codecontests" in c for n, c in COMMANDS if n == name), name
        assert any("_cpu" in c for n, c in COMMANDS if n == name), name


@pytest.mark.parametrize("name,command", COMMANDS, ids=[f"{n}:{i}" for i, (n, _) in enumerate(COMMANDS)])
def test_sweep_cells_compose_and_validate(name, command):
    expanded = cells(command)
    assert expanded, command
    expected = 1
    for arg in shlex.split(command)[3:]:
        value = arg.split("=", 1)[1]
        if "," in value and not re.match(r"^\[.*\]$", value):
            expected *= len(value.split(","))
    assert len(expanded) == expected
    for cell in expanded:
        validate(compose(cell))
