"""Entry point: `python launch.py [overrides]` runs one cell, `-m` a sweep of cells; `--plan` prints
what they would run (tpt/plan.py) and runs nothing."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tpt.compose import compose_in_app, register

register()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    if cfg.cluster.backend == "slurm" and HydraConfig.get().mode != RunMode.MULTIRUN:
        print(
            "tpt: error: cluster=slurm submits through Hydra's multirun launcher: add -m "
            "(python launch.py -m cluster=slurm ...), even for a single cell",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from tpt.runtime import tune_process

    # miniature=true: the cell's miniature, composed by this Hydra (the SLURM launcher composed it at submit time)
    cfg = compose_in_app(cfg, HydraConfig.get().overrides.task)
    from tpt.logs import quiet_libraries

    hydra = HydraConfig.get()
    quiet_libraries(str(Path(hydra.runtime.output_dir) / f"{hydra.job.name}.log"), cfg.verbose)
    tune_process()  # here, not at import: this function is also what a SLURM job runs
    # torch, transformers and the engines: imported once Hydra has parsed the command line (--help stays fast)
    from tpt.loop import run_cell
    from tpt.preflight import USER_ERRORS

    try:
        rows = run_cell(cfg, Path(HydraConfig.get().runtime.output_dir))
    except USER_ERRORS as e:  # bad input: the message says what to fix, a traceback would not help
        print(f"tpt: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return rows[-1]["pass@1"]  # the objective a Hydra sweeper would optimise


def check_command_line() -> None:
    """Typos, unknown keys or options, and cells that do not compose: one line naming the fix, before
    Hydra starts (it would print its own stack)."""
    from hydra._internal.utils import get_args_parser

    from tpt.commandline import check_command
    from tpt.config import ConfigError

    args, _ = get_args_parser().parse_known_args()
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    try:
        check_command(args.overrides)
    except ConfigError as e:
        print(f"tpt: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.argv = [("verbose=true" if a in ("-v", "--verbose") else a) for a in sys.argv]  # Hydra has no -v
    if "--plan" in sys.argv:  # the same overrides, planned instead of run: Hydra never sees the flag
        from tpt.plan import main as plan_main

        plan_main([a for a in sys.argv[1:] if a != "--plan"])
    else:
        check_command_line()
        main()
