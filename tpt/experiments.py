"""Which cells a multirun launches: `sweep` expands a command line exactly as Hydra's own sweeper does,
and the paper's tables (conf/experiment/tableN.yaml) are experiments whose `hydra.sweeper.params`
sweep `row` (conf/row/: one paper row's model, task, source, pruning, data size and rounds).
"""

from __future__ import annotations

from typing import List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from tpt.compose import CONF_DIR, compose_plain

TABLES = sorted(p.stem for p in (CONF_DIR / "experiment").glob("table*.yaml"))


def sweep(overrides: Sequence[str]) -> List[List[str]]:
    """The jobs of `python launch.py -m <overrides>`, each its overrides, in Hydra's order. As Hydra's
    BasicSweeper (`sweep()`, `split_arguments()`): the sweep parameters of the composed config
    (`hydra.sweeper.params`, which an experiment sets) come first and the command line after them, a
    key given twice keeps its last value (the command line wins), and the jobs are their product."""
    parser = OverridesParser.create()
    # What may set sweeper params: config group choices (an experiment) and Hydra's own keys
    fixed = [
        o.input_line
        for o in parser.parse_overrides(list(overrides))
        if not o.is_sweep_override() and ("." not in o.key_or_group or o.key_or_group.startswith("hydra."))
    ]
    params = compose_plain(fixed, hydra=True).hydra.sweeper.params or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(overrides)
    [jobs] = BasicSweeper.split_arguments(parser.parse_overrides(arguments), max_batch_size=None)
    return jobs


def cells(table: str, *extra: str) -> List[List[str]]:
    """Each cell's overrides for `python launch.py -m +experiment=<table> <extra>`."""
    return sweep([f"+experiment={table}", *extra])
