"""Training launchers: TRL SFT in this process (`single`), or over several GPUs and nodes through
`accelerate launch` (`ddp`, `fsdp`)."""
from tpt.training.sft import sft, to_conversations

TRAIN_STRATEGIES = ("single", "ddp", "fsdp")

__all__ = ["TRAIN_STRATEGIES", "sft", "to_conversations"]
