"""`miniature=true`: a cell of the paper's tables shrunk to run on a CPU, on the embedded default.

What the row varies stays: source, pruning, rounds, and data sizes in the same ratios (scaled by
`data.scale`). What changes: the model (every preset, and a distillation teacher, becomes the
embedded SmolLM2-135M; there is only one model offline, so a table's model axis collapses and
distillation samples the student's own model), and the task becomes a CPU-sized one of the same
kind, with that task preset's sampling (samples per question, new tokens, k):

- math: the bundled arithmetic problems (`conf/task/arith.yaml`), 96 train / 128 eval questions,
  sizes x 0.012 (the paper's 2k of 7,473 GSM8K questions becomes 24 of 96); a math task with
  another answer rule (`task=math500`, `task=jsonl task.answer=boxed`) keeps its rule and its
  instruction: the same problems end in `\\boxed{N}` (or a last number) and are judged by that rule,
  math-verify included;
- code: the bundled small stdin/stdout problems (`conf/task/minicode.yaml`: 54 train after 2
  worked examples, 32 test; 4 samples of up to 96 tokens), sizes x 0.004 (54 of CodeContests'
  13,328 train problems: the paper's 1k becomes 4). SmolLM2-135M solves some of them at round 0
  (docs/reproducing-the-paper.md), so a code miniature can show the method's effect, on a far easier
  task than the paper's.

Values set on the command line (`task.eval_questions=256`) are applied again on top. The values
applied are what the run directory pins (`run_config.yaml`), so a miniature cell says exactly what
it ran.
"""
from __future__ import annotations

from typing import Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from tpt.compose import CONF_DIR
from tpt.config import ModelConfig
from tpt.sources import source_of
from tpt.tasks import TASKS, task_kind

EMBEDDED_PRESET = "smollm2_135m"  # conf/model/
_ABSENT = object()
# Per task kind: the task preset, what is set over it, and the factor on data sizes.
SCALES = {
    "math": {"task": "arith", "set": {"task": {"train_questions": 96, "eval_questions": 128}}, "scale": 0.012},
    "code": {"task": "minicode", "set": {}, "scale": 0.004},
}


def apply(cfg: DictConfig, overrides: Optional[Sequence[str]] = None) -> None:
    """Rewrite `cfg` (a composed cell with miniature=true) into its CPU miniature, in place; the
    cell's command-line `overrides` (default: Hydra's, inside `launch.py`) still hold. Applying it
    again changes nothing, so the SLURM launcher applies it at submit time (the job asks for the
    miniature's resources, not the paper row's GPUs) and the cell again when it runs."""
    spec = SCALES[task_kind(cfg.task.name)]
    rule, instruction = cfg.task.get("answer", "hash"), cfg.task.instruction
    model = OmegaConf.load(CONF_DIR / "model" / f"{EMBEDDED_PRESET}.yaml")
    task = OmegaConf.load(CONF_DIR / "task" / f"{spec['task']}.yaml")  # @package _global_: task, think, eval, ...
    cfg.model = OmegaConf.merge(OmegaConf.structured(ModelConfig), model)
    settings = TASKS[spec["task"]].settings
    cfg.task = OmegaConf.merge(OmegaConf.structured(settings), task.task, spec["set"].get("task", {}))
    if rule != "hash":  # the same answer kind: the bundled solutions, the prompt and the judge follow the rule
        cfg.task.answer, cfg.task.instruction = rule, instruction
    for stage in ("think", "eval"):
        cfg[stage] = OmegaConf.merge(cfg[stage], task.get(stage, {}), spec["set"].get(stage, {}))
    source_of(cfg).as_miniature(cfg)
    cfg.data.scale = spec["scale"]
    for key, value in user_settings(overrides):  # what the command line set still holds (task.eval_questions=256)
        if key.startswith("task.") and OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            continue  # a setting of the replaced task's own (task.fields.question of task=jsonl): its data is not used
        OmegaConf.update(cfg, key, value, merge=False)


def user_settings(overrides: Optional[Sequence[str]] = None):
    """(key, value) of a cell's command-line overrides of single config values (not of config groups,
    nor Hydra's own); by default those Hydra ran this cell with, if it did."""
    if overrides is None:
        if not HydraConfig.initialized():
            return []
        overrides = HydraConfig.get().overrides.task
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [(o.key_or_group, o.value()) for o in parsed
            if "." in o.key_or_group and not o.key_or_group.startswith("hydra.") and not o.is_delete()]
