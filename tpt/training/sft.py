"""Supervised fine-tuning with TRL's SFTTrainer on conversational prompt/completion pairs (the loss
falls on the completion only): 1 epoch of AdamW, linear decay after 10% warmup by default; bf16
mixed precision where the device computes bf16 (`uses_bf16`), fp32 elsewhere. Training runs in processes of
its own (tpt/training/distributed.py): `single` one spawned process on one GPU, `ddp` / `fsdp` through
`accelerate launch`; each runs `train_and_save` here.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from tpt.logs import SCREEN
from tpt.models import ModelRef, cast_checkpoint, config_dtype, cpu_has_native_bf16, load_causal_lm, load_tokenizer
from tpt.prompt import CHAT_TEMPLATE_KWARGS, Message
from tpt.training import batch_shape, optimizer_steps, world_size
from tpt.training.strategies import strategy_of, train_in_processes

log = logging.getLogger(__name__)


def to_conversations(records: Sequence[dict], build_prompt: Callable[[str], List[Message]]) -> List[dict]:
    """TRL's conversational prompt/completion rows; TRL renders them with the same chat-template
    arguments think and eval use (CHAT_TEMPLATE_KWARGS), so training sees the very same prompt."""
    return [
        {
            "prompt": build_prompt(r["question"]),
            "completion": [{"role": "assistant", "content": r["completion"]}],
            "chat_template_kwargs": dict(CHAT_TEMPLATE_KWARGS),
        }
        for r in records
    ]


def example_lengths(tokenizer, examples: Sequence[dict]) -> List[int]:
    """Tokens of each prompt/completion example as its chat template renders the whole conversation."""
    return [
        len(
            tokenizer.apply_chat_template(
                e["prompt"] + e["completion"], tokenize=True, return_dict=False, **e["chat_template_kwargs"]
            )
        )
        for e in examples
    ]


def fit_length(examples: List[dict], base: ModelRef, cfg):
    """Examples and the train config to train them with, so that no example is cut: with
    train.max_length null (the default) the limit is the longest example (every prompt plus the
    completion it got, at most think.max_new_tokens); with a limit set, longer examples are dropped
    whole, never cut mid-answer, and counted. Returns (examples, config, dropped)."""
    from omegaconf import OmegaConf

    lengths = example_lengths(load_tokenizer(base.path, base.revision), examples)
    kept = [e for e, n in zip(examples, lengths) if cfg.max_length is None or n <= cfg.max_length]
    dropped = len(examples) - len(kept)
    if dropped:
        log.warning(
            "train: %d of %d examples are longer than train.max_length=%d tokens (longest %d): dropped, "
            "not cut; set train.max_length=null to train on every example",
            dropped,
            len(examples),
            cfg.max_length,
            max(lengths),
        )
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    resolved.max_length = cfg.max_length if cfg.max_length is not None else max(lengths, default=1)
    return kept, resolved, dropped


def uses_bf16(cfg) -> bool:
    """bf16 mixed precision (fp32 weights and optimizer state) unless train.bf16 says otherwise: on
    GPUs, and on CPUs that compute bf16 natively (docs/benchmarks.md, training) where the strategy
    allows it (its `cpu_bf16`)."""
    if torch.cuda.is_available():
        return cfg.bf16 is not False
    if not strategy_of(cfg).cpu_bf16:
        return False
    return cfg.bf16 if cfg.bf16 is not None else cpu_has_native_bf16()


def build_trainer(base_model: str, examples: List[dict], out_dir: Path, cfg, revision: Optional[str] = None):
    """An SFTTrainer for `examples` (conversational prompt/completion records) on `base_model`
    (at `revision`, for a hub model). Under `accelerate launch` the Trainer picks up the distributed
    setup (DDP, FSDP) itself."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    on_gpu = torch.cuda.is_available()
    steps = optimizer_steps(len(examples), cfg)
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"),
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=batch_shape(cfg)[0],
        gradient_accumulation_steps=batch_shape(cfg)[1],
        # Rounded down, unlike a ratio passed to transformers (rounded up): with a handful of steps a
        # whole step of warmup starts at lr 0, and a 1-step run would not train at all.
        warmup_steps=int(cfg.warmup_ratio * steps),
        lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay,
        optim="adamw_torch",
        max_length=cfg.max_length,
        completion_only_loss=True,
        gradient_checkpointing=strategy_of(cfg).gradient_checkpointing(cfg),
        bf16=uses_bf16(cfg),
        use_cpu=not on_gpu,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
    )
    args.fsdp_plugin_args = strategy_of(cfg).plugin_args(cfg, uses_bf16(cfg)) or args.fsdp_plugin_args
    # fp32 master weights on purpose (bf16=True above adds mixed precision; checkpoints are saved in the
    # base's dtype); left where they load, for the Trainer or FSDP to place (load_causal_lm).
    model = load_causal_lm(base_model, dtype="float32", revision=revision, place=False)
    tokenizer = load_tokenizer(base_model, revision)
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)


def sft(base: ModelRef, examples: List[dict], out_dir: Path, cfg) -> Dict:
    """Fine-tune `base` on prompt/completion `examples` with the train config `cfg`; the model is saved
    in `out_dir`."""
    micro, accum = batch_shape(cfg)
    log.info(
        "train: %d examples, %d optimizer steps of %d (%d process(es) x %d x %d accumulated), lr %g, strategy %s, %s",
        len(examples),
        optimizer_steps(len(examples), cfg),
        cfg.global_batch_size,
        world_size(cfg),
        micro,
        accum,
        cfg.lr,
        cfg.strategy,
        "bf16 mixed precision" if uses_bf16(cfg) else "fp32",
        extra=SCREEN,
    )
    return train_in_processes(base, examples, out_dir, cfg)


def train_and_save(
    base_model: str, examples: List[dict], out_dir: Path, cfg, revision: Optional[str] = None
) -> Optional[Dict]:
    """Train and save a model that loads on its own (safetensors + tokenizer). Every rank of a
    distributed run calls it: saving gathers FSDP's shards; rank 0 writes the files and gets the
    result (other ranks get None)."""
    trainer = build_trainer(base_model, examples, out_dir, cfg, revision)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    hosts = ranks_hosts()  # every rank takes part
    if not trainer.is_world_process_zero():
        return None
    trainer.processing_class.save_pretrained(str(out_dir))
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)  # nothing is checkpointed there
    cast_checkpoint(out_dir, config_dtype(base_model, revision))  # fp32 master weights, saved as the base's
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "examples": len(examples),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "lr": cfg.lr,
        "seconds": result.metrics.get("train_runtime"),
        "tokens": next(
            (float(h["num_tokens"]) for h in reversed(trainer.state.log_history) if "num_tokens" in h), None
        ),  # tokens the trainer saw (TRL's count, prompts included)
        "hosts": hosts,  # where it trained: one host name per rank, in rank order
    }


def ranks_hosts() -> List[str]:
    """The host name of every rank, in rank order (this one's alone outside a process group)."""
    import socket

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [socket.gethostname()]
    hosts: List[Optional[str]] = [None] * dist.get_world_size()
    dist.all_gather_object(hosts, socket.gethostname())
    return [str(h) for h in hosts]
