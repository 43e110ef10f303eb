"""Training: TRL SFT (tpt/training/sft.py) launched by the train config's strategy
(tpt/training/strategies.py: one spawned process on one GPU, or over several GPUs and nodes through
`accelerate launch`; never in the cell's own process), and the batch arithmetic every strategy shares."""

import math
from typing import Tuple

from tpt.training.strategies import STRATEGIES, strategy_of

__all__ = ["STRATEGIES", "batch_shape", "optimizer_steps", "strategy_of", "world_size"]


def world_size(cfg) -> int:
    """Training processes of a train config, as its strategy runs them."""
    return strategy_of(cfg).world_size(cfg)


def batch_shape(cfg) -> Tuple[int, int]:
    """(micro-batch per device, gradient accumulation steps) that make train.global_batch_size over
    the run's processes: the largest micro-batch up to train.batch_size dividing each process's share."""
    per_process = cfg.global_batch_size // world_size(cfg)  # validate: a whole number
    micro = max(d for d in range(1, min(cfg.batch_size, per_process) + 1) if per_process % d == 0)
    return micro, per_process // micro


def optimizer_steps(n_examples: int, cfg) -> int:
    """As the Trainer counts them: micro-batches per process per epoch, grouped by accumulation."""
    micro, accum = batch_shape(cfg)
    return math.ceil(math.ceil(n_examples / (micro * world_size(cfg))) / accum * cfg.epochs)
