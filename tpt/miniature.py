"""`miniature=true`: a cell of the paper's tables shrunk to run on a CPU, on the embedded default.

What the row varies stays: source, pruning, rounds, and data sizes in the same ratios (`data.scale`).
What changes: the model (every preset, and a distillation teacher, becomes the embedded
SmolLM2-135M; there is only one model offline, so a table's model axis collapses and distillation
samples the student's own model), and the task becomes the bundled task that stands in for its kind
(a task module's `StandIn`: `arith` for math, `minicode` for code), with that task's YAML (samples per
question, new tokens, k), its settings and its factor on data sizes. A math task with another answer
rule (`task=math500`, `task=jsonl task.answer=boxed`) keeps its rule and its instruction: the same
problems end in `\\boxed{N}` (or a last number) and are judged by that rule, math-verify included.

The miniature is composed by Hydra: `cell_overrides` turns a composed cell into the overrides of its
miniature (the stand-in's group choices and settings first, the cell's own rounds, data size and
micro-batch kept, then the cell's own command line), and
tpt.compose composes the cell again with them, once, before anything reads it (`miniature_of` then
names the task it stands for). The cell's own settings still hold (`task.eval_questions=256`); the
replaced task's data settings (`task.path`, `task.fields.*`) are not used, and the run says so.
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional, Sequence, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from tpt.config import schema_has_key
from tpt.logs import SCREEN
from tpt.sources import source_of
from tpt.tasks import TASKS, stand_in

log = logging.getLogger(__name__)

EMBEDDED_PRESET = "smollm2_135m"  # conf/model/
# Where a task's data comes from: the stand-in's own generator replaces it.
DATA_KEYS = ("task.path", "task.hub_id", "task.hub_config")
# What a task's YAML may set beyond its `task`, `think` and `eval` (tests/test_axes.py holds every
# conf/task/*.yaml to it): in a miniature these stay the cell's, not the stand-in's.
CELL_KEYS = ("rounds", "data.size", "train.batch_size")


def hydra_value(value) -> str:
    """A value as Hydra's override grammar reads it back (quoted: any text survives)."""
    if value is None:
        return "null"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def cell_overrides(cfg: DictConfig, overrides: Sequence[str]) -> Tuple[List[str], List[str]]:
    """For a composed cell with miniature=true and its command-line `overrides`: the overrides that
    compose its miniature, and the cell's own task settings the miniature does not use."""
    task = TASKS[cfg.task.name]
    mini = stand_in(task.kind)
    ours = [
        f"model={EMBEDDED_PRESET}",
        f"task={mini.name}",
        *mini.stands_in.settings,
        *(f"{key}={OmegaConf.select(cfg, key)}" for key in CELL_KEYS),
        f"data.scale={mini.stands_in.scale}",
        f"miniature_of={cfg.task.name}",
    ]
    rule = cfg.task.get("answer", "hash")
    if rule != "hash":  # the same answer kind: the bundled solutions, the prompt and the judge follow the rule
        ours += [f"task.answer={rule}", f"task.instruction={hydra_value(cfg.task.instruction)}"]
    ours += source_of(cfg).miniature_settings()
    kept, unused = [], []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        key = o.key_or_group
        if key in ("model", "task", "miniature_of"):  # chosen by the miniature
            continue
        # A setting of the replaced task's data, or of a key only that task has: not used. A key no task has
        # stays, so the config check refuses it by name.
        if key in DATA_KEYS or (
            key.startswith("task.")
            and schema_has_key(task.settings, key[5:])
            and not schema_has_key(mini.settings, key[5:])
        ):
            unused.append(o.input_line)
            continue
        kept.append(o.input_line)
    return ours + kept, unused


def applied(cfg: DictConfig) -> bool:
    return cfg.get("miniature_of") is not None


def paper_sizes_on_the_default(cfg: DictConfig, overrides: Sequence[str]) -> bool:
    """A data_size group (the paper's 1k-6k) chosen on the embedded default's bundled task: its sizes are
    the paper's, scaled as a miniature scales them (else 6k would ask more than the bundled questions)."""
    chosen = any(
        o.key_or_group == "data_size" and o.value() is not None
        for o in OverridesParser.create().parse_overrides(list(overrides))
    )
    stands_in = TASKS[cfg.task.name].stands_in is not None
    return chosen and stands_in and cfg.model.name == EMBEDDED_PRESET


def compose_miniature(
    cfg: DictConfig, overrides: Sequence[str], compose: Callable[[List[str]], DictConfig]
) -> Optional[DictConfig]:
    """The cell's miniature composed by `compose` (Hydra's, as the caller has it), or None when the cell
    is no miniature or is one already. A data_size group on the embedded default makes it one."""
    if applied(cfg) or not (cfg.miniature or paper_sizes_on_the_default(cfg, overrides)):
        return None
    if not cfg.miniature:
        task = stand_in(TASKS[cfg.task.name].kind)
        log.info(
            "data_size: the paper's %d examples on the bundled %s problems, x %g as miniature=true scales them (%s)",
            cfg.data.size,
            task.name,
            task.stands_in.scale,
            ", ".join(task.stands_in.settings),
            extra=SCREEN,
        )
        overrides = [*overrides, "miniature=true"]
    mini, unused = cell_overrides(cfg, overrides)
    if unused:
        log.warning(
            "miniature: %s set %s's data, which the miniature replaces by the bundled %s: not used",
            " ".join(unused),
            cfg.task.name,
            stand_in(TASKS[cfg.task.name].kind).name,
        )
    return compose(mini)


__all__ = ["EMBEDDED_PRESET", "applied", "cell_overrides", "compose_miniature"]
