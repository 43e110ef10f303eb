"""Hydra's side of the config: the schema and its resolvers registered once, and `compose`, the
config `python launch.py <overrides>` would run, composed in-process (tests, benchmarks, docs)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from tpt.config import TASK_SCHEMAS, Config
from tpt.naming import cell_name

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="tpt_schema", node=Config)
    for name, schema in TASK_SCHEMAS.items():  # conf/task/*.yaml: `- /task_schema/<name>@task`
        store.store(group="task_schema", name=name, node=schema)
    if not OmegaConf.has_resolver("tpt_cell"):
        OmegaConf.register_new_resolver("tpt_cell", cell_name)
    if not OmegaConf.has_resolver("tpt_cpu"):  # a paper table's miniature lands beside it: outputs/table3_cpu
        OmegaConf.register_new_resolver("tpt_cpu", lambda miniature: "_cpu" if miniature else "")


def compose(overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """The config of `overrides`; with `hydra`, Hydra's own node too (a sweeper's parameters)."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)
