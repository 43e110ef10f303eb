"""A cell's identity on disk: its directory name (from its command-line overrides) and the config its
run directory is pinned to, both without the keys that do not change what a cell computes."""

from __future__ import annotations

import hashlib
from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

# Keys (and everything under them) that do not change what a cell computes: they stay out of the
# cell's directory name and out of its pinned config, so a cell resumes under other values of them.
# Where and how fast a cell runs, not what it computes (a stage's chunks are the same whichever array
# task made them).
RERUN_FREE_KEYS = (
    "name",
    "rounds",
    "logger",
    "cache",
    "cluster",
    "verbose",
    "task.code.workers",
    "task.contamination_ngram",
    "task.contamination",
    "think.array_tasks",
    "eval.array_tasks",
)
MAX_CELL_NAME = 200  # file names stop at 255 bytes; longer names keep a prefix and a hash of the whole


def rerun_free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RERUN_FREE_KEYS)


def cell_name(task_overrides: Sequence[str]) -> str:
    """A cell's directory: its overrides (sorted, as Hydra's override_dirname) without the rerun-free
    keys, '/' in values made flat; 'default' without any."""
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    lines = sorted(o.input_line for o in parsed if not rerun_free(o.key_or_group))
    name = ",".join(lines).replace("/", "_") or "default"
    if len(name.encode()) > MAX_CELL_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = name.encode()[: MAX_CELL_NAME - 13].decode(errors="ignore") + "-" + digest
    return name


def pinned(cfg: DictConfig) -> dict:
    """What a run directory is bound to: the resolved config without the rerun-free keys."""
    out = OmegaConf.to_container(cfg, resolve=True)
    for key in RERUN_FREE_KEYS:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return out
