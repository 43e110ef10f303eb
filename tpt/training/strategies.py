"""Training strategies (`train.strategy`, set by a model preset's `train_strategy`): how the SFT of
one round is launched and what it holds in memory. One class per strategy, and everything about it
lives in it: how many processes train, its launch command (and accelerate config, in
tpt/training/accelerate/), the checks of its layout, the Trainer settings that differ, and its
memory terms for the plan. A new strategy is a class here, registered with `@strategy`, plus its
accelerate YAML: docs/design.md shows one.

Every strategy trains in processes of its own, never in the cell's, so the trainer's memory
(weights, gradients, optimizer states: tens of GB for a 2B model) is gone when they exit and the
next engine finds the GPU free. Every process runs tpt/training/worker.py on the job written by
tpt.training.distributed.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

from tpt.config import ConfigError
from tpt.runtime import training_environment
from tpt.training.distributed import ACCELERATE_CONFIGS, accelerate_command, one_gpu, run_training, write_job

log = logging.getLogger(__name__)


class TrainStrategy:
    name: ClassVar[str]
    accelerate_config: ClassVar[Optional[str]] = None  # its file in tpt/training/accelerate/, if launched by accelerate
    # On a CPU, bf16 mixed precision where the CPU computes it natively; False: fp32 (the CPU processes
    # of accelerate's multi-process strategies run in fp32)
    cpu_bf16: ClassVar[bool] = False

    def world_size(self, cfg) -> int:
        """Training processes of a train config: one per GPU on every node."""
        return cfg.processes_per_node * cfg.nodes

    def check(self, cfg) -> None:
        """Raise ConfigError for a train config (processes, nodes) this strategy cannot run."""
        if cfg.processes_per_node < 1 or cfg.nodes < 1:
            raise ConfigError(
                f"invalid config: train.processes_per_node train.strategy={self.name} needs >= 1 "
                f"process per node on >= 1 node (got {cfg.processes_per_node} x {cfg.nodes}; a preset's "
                f"gpus and nodes set them)"
            )

    def extra_args(self, cfg) -> Sequence[str]:
        """Its own arguments to `accelerate launch`."""
        return ()

    def command(self, job: Path, cfg, *, cpu: bool, env: Mapping[str, str]) -> Tuple[List[str], Dict[str, str]]:
        """The command that trains `job`, and its environment."""
        config = ACCELERATE_CONFIGS / str(self.accelerate_config)
        return accelerate_command(
            config, cfg.processes_per_node, cfg.nodes, job, extra=self.extra_args(cfg), cpu=cpu, env=env
        ), dict(env)

    def announce(self, cfg, cpu: bool) -> None:
        """Say what the user should know before it trains (nothing by default)."""

    def gradient_checkpointing(self, cfg) -> bool:
        """Whether the Trainer checkpoints activations (train.gradient_checkpointing)."""
        return bool(cfg.gradient_checkpointing)

    def plugin_args(self, cfg, bf16: bool) -> Optional[Dict]:
        """The Trainer's fsdp_plugin_args (None: accelerate's own from its config)."""
        return None

    def state_bytes(self, shape, cfg) -> float:
        """Per GPU, for the plan: fp32 weights, gradients and AdamW's two moments (16 bytes a
        parameter), as this strategy holds them, and autocast's bf16 copy of the weights (2 more),
        which backward keeps."""
        return 18 * shape.params

    def train(self, base, examples: List[dict], out_dir: Path, cfg) -> Dict:
        import torch

        job = write_job(base, examples, out_dir, cfg)
        cpu = not torch.cuda.is_available()
        self.announce(cfg, cpu)
        cmd, env = self.command(job, cfg, cpu=cpu, env=training_environment(os.environ))
        return run_training(cmd, env, job, out_dir)


STRATEGIES: Dict[str, TrainStrategy] = {}


def strategy(cls: Type[TrainStrategy]) -> Type[TrainStrategy]:
    """Class decorator: register a strategy under its name."""
    STRATEGIES[cls.name] = cls()
    return cls


@strategy
class Single(TrainStrategy):
    """One spawned process on one GPU (or the CPU)."""

    name = "single"
    cpu_bf16 = True

    def world_size(self, cfg) -> int:
        return 1

    def check(self, cfg) -> None:
        if cfg.nodes != 1:
            raise ConfigError(
                "invalid config: train.nodes > 1 needs a multi-process strategy "
                f"(train.strategy one of {tuple(n for n in STRATEGIES if n != self.name)})"
            )

    def command(self, job: Path, cfg, *, cpu: bool, env: Mapping[str, str]) -> Tuple[List[str], Dict[str, str]]:
        return [sys.executable, "-m", "tpt.training.worker", str(job)], {**env, **one_gpu(env)}


@strategy
class DDP(TrainStrategy):
    """Data parallel over every GPU of every node: a full copy of the model per process."""

    name = "ddp"
    accelerate_config = "ddp.yaml"


@strategy
class FSDP(TrainStrategy):
    """Fully sharded data parallel (FSDP2): weights, gradients and optimizer states divided over the
    processes, gathered a layer at a time to compute; offload_params keeps them in CPU memory."""

    name = "fsdp"
    accelerate_config = "fsdp.yaml"

    def extra_args(self, cfg) -> Sequence[str]:
        return [
            "--fsdp_activation_checkpointing",
            "true" if cfg.gradient_checkpointing else "false",
            "--fsdp_offload_params",
            "true" if cfg.get("offload_params", False) else "false",
        ]

    def announce(self, cfg, cpu: bool) -> None:
        if cpu:
            log.warning(
                "train.strategy=fsdp on a CPU: accelerate shards only on accelerators, so these %d processes "
                "train as DDP (a full copy each); tests/test_fsdp_cpu.py checks FSDP2 itself on CPU",
                self.world_size(cfg),
            )

    def gradient_checkpointing(self, cfg) -> bool:
        return False  # FSDP checkpoints activations itself (--fsdp_activation_checkpointing): never both

    def plugin_args(self, cfg, bf16: bool) -> Optional[Dict]:
        """Under FSDP with bf16, the one mixed-precision policy every strategy uses: bf16 compute, fp32
        master weights, gradients reduced in fp32. accelerate's FSDP2 default reduces them in bf16, where
        `single` and ddp keep them fp32 under autocast. The other FSDP settings still come from fsdp.yaml
        (the plugin reads them from accelerate's environment)."""
        import torch

        if os.environ.get("ACCELERATE_USE_FSDP", "").lower() != "true" or not bf16:
            return None
        return {
            "fsdp_version": 2,
            "mixed_precision_policy": {
                "param_dtype": torch.bfloat16,
                "reduce_dtype": torch.float32,
                "output_dtype": torch.bfloat16,
            },
        }

    def state_bytes(self, shape, cfg) -> float:
        """Divided over the ranks (or in CPU memory with offload_params), plus what is gathered to
        compute: two layers' bf16 weights (one prefetched), the fp32 embeddings and head."""
        states = 0.0 if cfg.offload_params else 16 * shape.params / self.world_size(cfg)
        return states + 2 * 2 * shape.params / shape.layers + 2 * 4 * shape.vocab * shape.hidden


def strategy_of(cfg) -> TrainStrategy:
    """The strategy of a train config (tpt.validate has checked the name)."""
    return STRATEGIES[cfg.strategy]


def train_in_processes(base, examples: List[dict], out_dir: Path, cfg) -> Dict:
    """Train `base` on `examples` into `out_dir` with the train config's strategy; rank 0's result."""
    return strategy_of(cfg).train(base, examples, out_dir, cfg)


__all__ = ["STRATEGIES", "TrainStrategy", "strategy", "strategy_of", "train_in_processes"]
