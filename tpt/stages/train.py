"""Train: fine-tune M_{i-1} on round i's pruned examples (tpt.training: TRL SFT, one process or
accelerate's DDP / FSDP). A round whose pruning kept nothing skips training: M_i = M_{i-1}. A
checkpoint trained before from the same parent, data and settings comes from the cache instead.

Writes `round_<i>/train/model/` (M_i: safetensors + tokenizer) and `result.json` (`TrainResult`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, TypedDict

from tpt.backends import release_all
from tpt.cell import Cell
from tpt.config import ConfigError
from tpt.io import read_jsonl, write_json
from tpt.logs import SCREEN
from tpt.training.sft import fit_length, sft, to_conversations

log = logging.getLogger(__name__)


class TrainResult(TypedDict, total=False):
    """train/result.json."""

    skipped: bool  # no data survived pruning: no model saved, M_i = M_{i-1}
    examples: int
    steps: int  # optimizer steps
    train_loss: float  # mean over the run
    first_loss: float
    last_loss: float
    lr: float
    seconds: float  # of the training that made the checkpoint
    tokens: float  # tokens the trainer saw (TRL's count, prompts included)
    hosts: List[str]  # the host name of every training process, in rank order
    too_long: int  # examples dropped whole: longer than train.max_length (never cut)
    max_length: int  # the limit trained with (train.max_length, or the longest example when null)
    from_cache: str  # the checkpoint was reused from the cache (this lineage identity), not trained here


def trained(result: TrainResult) -> str:
    """What a round's training did, in a few words."""
    if result.get("from_cache"):
        return "reused a checkpoint trained earlier on the same data (the cache)"

    def number(key: str, spec: str) -> str:
        return "?" if result.get(key) is None else format(result[key], spec)

    return (
        f"{result['examples']} examples, {result['steps']} steps, loss {number('first_loss', '.3f')} -> "
        f"{number('last_loss', '.3f')}, {number('seconds', '.0f')} s"
    )


def run(cell: Cell, i: int, out: Path) -> None:
    records = read_jsonl(cell.rundir.stage(i, "prune") / "train.jsonl")
    if not records:
        log.warning("round %d train: no training data survived pruning; M_%d = M_%d", i, i, i - 1)
        result = TrainResult(skipped=True, examples=0)
    else:
        examples = to_conversations(records, cell.prompt)
        identity = cell.models.trained_identity(i, examples)
        cached = cell.checkpoints.fetch(identity, out / "model", f"round {i} train") if cell.checkpoints else None
        if cached:
            result = TrainResult(**cached, from_cache=identity)
        else:
            release_all()  # a generation engine kept between calls would hold memory training needs
            parent = cell.models.model(i - 1)
            fitting, train_cfg, too_long = fit_length(examples, parent, cell.cfg.train)
            if not fitting:
                raise ConfigError(
                    f"round {i} train: all {len(examples)} examples are longer than "
                    f"train.max_length={cell.cfg.train.max_length}; raise it or set it to null"
                )
            result = sft(parent, fitting, out / "model", train_cfg)
            result.update(too_long=too_long, max_length=train_cfg.max_length)
            if cell.checkpoints:
                cell.checkpoints.store(identity, out / "model", result)
        log.info("round %d train: %s", i, trained(result), extra=SCREEN)
    write_json(out / "result.json", result)
