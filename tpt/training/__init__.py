"""Training strategies (`train.strategy`): TRL SFT in the cell's process (`single`, tpt/training/sft.py),
or over several GPUs and nodes through `accelerate launch` (`ddp`, `fsdp`, tpt/training/distributed.py)."""

TRAIN_STRATEGIES = ("single", "ddp", "fsdp")


def world_size(cfg) -> int:
    """Training processes of a train config: one, or one per GPU on every node (ddp / fsdp)."""
    return 1 if cfg.strategy == "single" else cfg.processes_per_node * cfg.nodes
