"""Training strategies (`train.strategy`): TRL SFT in the cell's process (`single`, tpt/training/sft.py),
or over several GPUs and nodes through `accelerate launch` (`ddp`, `fsdp`, tpt/training/distributed.py)."""

TRAIN_STRATEGIES = ("single", "ddp", "fsdp")
