"""Everything about a cell that can be checked before any compute: the backend that runs here, the
config's values, the task's data and the models."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Dict, Optional

from omegaconf import DictConfig, OmegaConf

from tpt import contamination, models
from tpt.backends import BackendUnavailable, check_backend, resolve_backend
from tpt.cell import Prepared
from tpt.config import Config, ConfigError
from tpt.prompt import system_turn_accepted
from tpt.pruning import RULES
from tpt.rundir import RunDirBusy
from tpt.sources import source_of
from tpt.tasks import TASKS, DataError, TaskData, load_task
from tpt.validate import validate
from tpt.verify.sandbox import SandboxUnavailable, missing_isolation, require_isolation

log = logging.getLogger(__name__)

# Errors caused by the user's input (config, data files, model ids), reported without a traceback.
USER_ERRORS = (ConfigError, DataError, models.ModelError, RunDirBusy, BackendUnavailable, SandboxUnavailable)


def typed(config: dict) -> DictConfig:
    """A cell's resolved config sent as plain data (to a SLURM array task), under its schema again,
    its task's and pruning rule's own settings included, so it is checked as the composed one was."""
    task, rule = TASKS[config["task"]["name"]].settings, RULES[config["pruning"]["strategy"]].settings
    return OmegaConf.merge(OmegaConf.structured(Config(task=task(), pruning=rule())), config)


def check_reachable(cfg: DictConfig, questions: int) -> None:
    """Refuse a data size that the train questions cannot give even if every one were solved: with
    data.per_question unique examples per question, a bigger size would train on the same set as a
    smaller one, and a data-size sweep would show rows that differ only by noise."""
    self_size, human = source_of(cfg).sizes(cfg)
    most = questions * cfg.data.per_question
    if max(self_size, human) > most:
        raise ConfigError(
            f"data.size asks for {self_size + human} examples a round (data.size={cfg.data.size} x data.scale="
            f"{cfg.data.scale}) but task {cfg.task.name} has {questions} train questions, at most {most} examples "
            f"({cfg.data.per_question} per question): the size cannot be reached. On the embedded default add "
            f"miniature=true (it scales the paper's sizes to the CPU task: 1k -> 12), or lower data.size, or raise "
            f"task.train_questions or data.per_question."
        )


def decontaminated(cfg: DictConfig, data: TaskData) -> TaskData:
    """The data with its contamination check (what the cell trains on against its eval questions); with
    task.decontaminate=true, without the train questions that overlap."""
    source = source_of(cfg)
    rule, n = cfg.task.contamination, cfg.task.contamination_ngram
    report = contamination.check(
        data.train, data.eval, n, with_solutions=source.thinker is None or source.human_share, rule=rule
    )
    if report["overlapping_train"]:
        log.warning(
            "contamination: %d of %d train questions share %s with %d of the %d eval questions%s",
            report["overlapping_train"],
            report["train_questions"],
            contamination.describe(rule, n),
            report["overlapping_eval"],
            report["eval_questions"],
            "; dropped (task.decontaminate=true)"
            if cfg.task.decontaminate
            else " (contamination.json names them; task.decontaminate=true drops them)",
        )
    if cfg.task.decontaminate and report["overlapping_train"]:
        data = replace(data, train=[p for p in data.train if p.id not in report["pairs"]])
        report["dropped_train"] = report["overlapping_train"]
    return replace(data, contamination=report)


def checked(cfg: DictConfig, decided: Optional[Dict[str, object]] = None) -> DictConfig:
    """The config with the backend `auto` picks here (added to `decided`), validated, its backend
    checked: what a cell checks before anything else, and the SLURM launcher at submit time."""
    decided = {} if decided is None else decided
    backend = resolve_backend(cfg.backend.name)
    if backend != cfg.backend.name:
        decided["backend.name"] = backend
    cfg = decide(cfg, decided)
    validate(cfg)
    check_backend(cfg.backend.name)
    return cfg


def prepare(cfg: DictConfig) -> Prepared:
    """Check the config, the backend, the task's data and the models, before any compute. The composed
    config is never written to: what is decided here (the backend `auto` picks, a chat template's system
    role) is a new config on top of it, and is recorded in the run directory (preflight.json)."""
    decided: Dict[str, object] = {}
    cfg = checked(cfg, decided)
    data = decontaminated(cfg, load_task(cfg.task))
    check_reachable(cfg, len(data.train))
    base = models.check_loadable(cfg.model.id, cfg.model.revision)
    if cfg.model.system_role is None:  # model=hf: found out from the template
        decided["model.system_role"] = system_turn_accepted(
            models.load_tokenizer(base, cfg.model.revision), cfg.model.id
        )
        cfg = decide(cfg, decided)
    teacher_id, teacher_revision = source_of(cfg).teacher_id(cfg)
    teacher = models.check_loadable(teacher_id, teacher_revision) if teacher_id else None
    sandbox = None
    if TASKS[cfg.task.name].kind == "code":  # untrusted programs will run: with the isolation required, or said
        sandbox = {"isolation": cfg.task.code.isolation, **require_isolation(cfg.task.code.isolation)}
        if cfg.task.code.isolation == "none":
            log.warning(
                "task.code.isolation=none: programs under test run on this machine with limits only%s",
                "" if not missing_isolation(sandbox) else f" (it lacks {', '.join(missing_isolation(sandbox))})",
            )
    return Prepared(cfg, decided, data, base, teacher, sandbox)


def decide(cfg: DictConfig, decided: Dict[str, object]) -> DictConfig:
    """`cfg` with the `decided` values, as a new read-only config (`cfg` is left as it was)."""
    out = copy.deepcopy(cfg)
    OmegaConf.set_readonly(out, False)
    for key, value in decided.items():
        OmegaConf.update(out, key, value, merge=False)
    OmegaConf.set_readonly(out, True)
    return out
