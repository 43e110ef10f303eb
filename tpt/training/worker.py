"""One process of a distributed training run: `accelerate launch ... -m tpt.training.worker job.json`.

Reads the job written by `tpt.training.distributed`, trains on this process's share of the data and
saves the model (gathered from all ranks); rank 0 writes the result file the parent reads. A rank
whose write finds no space says so (the job's `no_space` file and its exit code), since a library's
own I/O error (safetensors') reaches the parent only as exit code 1.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from tpt.io import no_space_code, read_json, read_jsonl, write_json
from tpt.runtime import tune_process
from tpt.training.sft import train_and_save

log = logging.getLogger(__name__)


def main(job_path: str) -> None:
    tune_process()  # before TRL's imports
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    job = read_json(Path(job_path))
    try:
        result = train_and_save(
            job["base_model"],
            read_jsonl(Path(job["examples"])),
            Path(job["out_dir"]),
            OmegaConf.create(job["train"]),
            job["revision"],
        )
    except Exception as error:
        code = no_space_code(error)
        if code is None:
            raise
        log.exception("training found no space to write %s", job["out_dir"])
        with contextlib.suppress(OSError):  # the report may find no space either: the exit code still says it
            write_json(Path(job["no_space"]), {"errno": code})
        sys.exit(code)
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
