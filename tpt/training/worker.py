"""One process of a distributed training run: `accelerate launch ... -m tpt.training.worker job.json`.

Reads the job written by `tpt.training.distributed`, trains on this process's share of the data and
saves the model (gathered from all ranks); rank 0 writes the result file the parent reads.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from tpt.io import read_json, read_jsonl, write_json
from tpt.runtime import tune_process
from tpt.training.sft import train_and_save


def main(job_path: str) -> None:
    tune_process()  # before TRL's imports
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    job = read_json(Path(job_path))
    result = train_and_save(job["base_model"], read_jsonl(Path(job["examples"])), Path(job["out_dir"]),
                            OmegaConf.create(job["train"]), job["revision"])
    if result is not None:  # rank 0
        write_json(Path(job["result"]), result)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # The other ranks wait here while rank 0 writes the model, then all leave the group together:
        # a rank that exits with the group still up can abort in gloo's teardown (SIGABRT seen in CI).
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
