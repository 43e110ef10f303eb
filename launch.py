"""Entry point: `python launch.py [overrides]` runs one cell, `-m` a sweep of cells."""
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from tpt.config import register, register_resolvers

register()
register_resolvers()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from tpt.loop import run  # heavy imports after Hydra has parsed the command line

    rows = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return rows[-1]["pass@1"]  # the objective a Hydra sweeper would optimise


if __name__ == "__main__":
    main()
