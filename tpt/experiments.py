"""The paper's tables as Hydra experiments (conf/experiment/tableN.yaml): which cells each one runs.

An experiment sweeps `row` (conf/row/: one paper row's model, task, source, pruning, data size and
rounds) through `hydra.sweeper.params`; `cells` expands that as `python launch.py -m` would.
"""

from __future__ import annotations

import itertools
from typing import List

from hydra.core.override_parser.overrides_parser import OverridesParser

from tpt.compose import CONF_DIR, compose

TABLES = sorted(p.stem for p in (CONF_DIR / "experiment").glob("table*.yaml"))


def cells(table: str, *extra: str) -> List[List[str]]:
    """Each cell's overrides for `python launch.py -m +experiment=<table> <extra>`: the product of the
    sweep parameters the experiment sets, parsed by Hydra's override parser."""
    base = [f"+experiment={table}", *extra]
    params = compose(base, hydra=True).hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    return [base + list(cell) for cell in itertools.product(*choices)]
