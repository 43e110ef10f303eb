"""Hydra's side of the config: the schema, the registries' structured configs and the resolvers,
registered once; `compose`, the config `python launch.py <overrides>` would run, composed in-process
(tests, benchmarks, docs, the plan), its miniature included."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from tpt.config import Config
from tpt.miniature import compose_miniature
from tpt.naming import cell_name
from tpt.pruning import RULES
from tpt.tasks import TASKS

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register() -> None:
    """The schema, and each task's and pruning rule's settings, which their YAML names
    (`- /task_schema/<task>@task`, `- /pruning_schema/<rule>@_here_`)."""
    store = ConfigStore.instance()
    store.store(name="tpt_schema", node=Config)
    for task in TASKS.values():
        store.store(group="task_schema", name=task.name, node=task.settings)
    for rule in RULES.values():
        store.store(group="pruning_schema", name=rule.name, node=rule.settings)
    if not OmegaConf.has_resolver("tpt_cell"):
        OmegaConf.register_new_resolver("tpt_cell", cell_name)
    if not OmegaConf.has_resolver("tpt_cpu"):  # a paper table's miniature lands beside it: outputs/table3_cpu
        OmegaConf.register_new_resolver("tpt_cpu", lambda miniature: "_cpu" if miniature else "")


def compose_plain(overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """The config of `overrides` as Hydra composes it; with `hydra`, Hydra's own node too (a sweeper's
    parameters). A miniature is not applied: see `compose`."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def compose(overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """The cell `python launch.py <overrides>` runs: with miniature=true, its miniature (tpt.miniature)."""
    cfg = compose_plain(overrides, hydra)
    return compose_miniature(cfg, overrides, lambda mini: compose_plain(mini, hydra)) or cfg


def compose_in_app(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Inside `launch.py` (Hydra's app, which composed `cfg` from `overrides`): the cell's miniature
    composed by the same Hydra, or `cfg` itself."""
    return compose_miniature(cfg, overrides, lambda mini: hydra_compose(config_name="config", overrides=mini)) or cfg


__all__ = ["CONF_DIR", "compose", "compose_in_app", "compose_plain", "register"]
