"""What every training strategy (tpt/training/strategies.py) launches with: the job file its
processes read (base model, examples, train config, in the stage's directory), `accelerate launch`
of `tpt.training.worker` over processes and nodes, and running the command to its result.

The accelerate command takes a strategy's config (tpt/training/accelerate/) and arguments, adds the
process counts and, on N nodes (inside a SLURM allocation), `srun --nodes N` with a rendezvous on the
first node. Without a GPU it adds `--mixed_precision no`: the same processes join over gloo
(accelerate's `--cpu` would start a single process).
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from omegaconf import OmegaConf

from tpt.io import NO_SPACE, disk_full, read_json, write_json, write_jsonl
from tpt.logs import log_file_handle

log = logging.getLogger(__name__)

ACCELERATE_CONFIGS = Path(__file__).with_name("accelerate")
RENDEZVOUS_PORT = 29500
LOW_SPACE = 64 << 20  # bytes free below which a failed training that said nothing is taken for a full disk


class LaunchError(RuntimeError):
    """The distributed training command could not be built or failed."""


def head_node(env: Mapping[str, str]) -> str:
    """The first host of the SLURM allocation: every node's rendezvous address."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise LaunchError(
            "multi-node training (train.nodes > 1) must run inside a SLURM allocation of that many "
            "nodes (cluster=slurm); SLURM_JOB_NODELIST is not set"
        )
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, env=dict(env))
    if out.returncode != 0 or not out.stdout.split():
        raise LaunchError(f"`scontrol show hostnames {nodelist}` failed: {out.stderr.strip()}")
    return out.stdout.split()[0]


def accelerate_command(
    config: Path,
    processes_per_node: int,
    nodes: int,
    job: Path,
    *,
    extra: Sequence[str] = (),
    cpu: bool,
    env: Mapping[str, str] = os.environ,
) -> List[str]:
    """The command that trains `job` under `accelerate launch` with `config` (a strategy's, in
    ACCELERATE_CONFIGS) and the strategy's `extra` arguments, on every process of every node."""
    if not config.is_file():
        raise LaunchError(f"no accelerate config {config.name} in {config.parent}")
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--num_processes",
        str(processes_per_node * nodes),
        "--num_machines",
        str(nodes),
        *extra,
    ]
    if cpu:  # no GPU: the same launcher (torchrun); the Trainer (use_cpu) then joins with gloo
        launch += ["--mixed_precision", "no"]
    worker = ["-m", "tpt.training.worker", str(job)]
    if nodes == 1:  # port 0: accelerate picks a free one, so two trainings on one node never meet on 29500
        return launch + ["--main_process_port", "0"] + worker
    launch += [
        "--main_process_ip",
        head_node(env),
        "--main_process_port",
        str(RENDEZVOUS_PORT),
        "--rdzv_backend",
        "static",
    ]
    # $SLURM_NODEID differs per node, so srun's shell expands it there. The timeout warning (USR2) is the
    # cell's to act on: training ignores it (SIG_IGN is inherited through exec and by every process).
    per_node = "trap '' USR2; exec " + shlex.join(launch) + " --machine_rank $SLURM_NODEID " + shlex.join(worker)
    srun = [
        "srun",
        f"--nodes={nodes}",
        # Explicitly: inside the cell's one-task job step, srun takes SLURM_NTASKS=1 from the environment as
        # -n 1, reduces the nodes to one ("can't run 1 processes on 2 nodes") and starts machine rank 0 only
        f"--ntasks={nodes}",
        "--ntasks-per-node=1",
        "--overlap",  # beside the cell's own job step, which holds the first node's resources
        f"--gpus-per-node={processes_per_node}",
        "--kill-on-bad-exit=1",
    ]  # one node failing ends the others now, not at the NCCL timeout
    if env.get("SLURM_CPUS_PER_TASK"):  # srun no longer inherits it (SLURM 22.05+)
        srun.append(f"--cpus-per-task={env['SLURM_CPUS_PER_TASK']}")
    return srun + ["bash", "-c", per_node]


def write_job(base, examples: List[dict], out_dir: Path, cfg) -> Path:
    """The job every worker process reads (tpt/training/worker.py), beside `out_dir`; rank 0 writes
    its result where the job's `result` says."""
    work = out_dir.parent
    write_jsonl(work / "train_examples.jsonl", examples)
    job = work / "train_job.json"
    no_space = work / "train_no_space.json"
    no_space.unlink(missing_ok=True)  # an earlier attempt's, whose disk has been freed since
    write_json(
        job,
        {
            "base_model": base.path,
            "revision": base.revision,
            "examples": str(work / "train_examples.jsonl"),
            "out_dir": str(out_dir),
            "train": OmegaConf.to_container(cfg, resolve=True),
            "result": str(work / "train_worker_result.json"),
            "no_space": str(no_space),
        },
    )
    return job


def no_space_reported(job: Path, returncode: int) -> Optional[int]:
    """ENOSPC or EDQUOT when the failed training ran out of space: a worker's `no_space` report, its
    exit code (a single process; torchrun turns a rank's code into 1), or, where the report itself found
    no space, a disk left with under LOW_SPACE free."""
    report = Path(read_json(job)["no_space"])
    if report.is_file():
        return read_json(report)["errno"]
    if returncode in NO_SPACE:
        return returncode
    if shutil.disk_usage(job.parent).free < LOW_SPACE:
        return errno.ENOSPC
    return None


def one_gpu(env: Mapping[str, str]) -> Dict[str, str]:
    """The environment that pins a single-process run to the first GPU it may use: with several visible,
    transformers' Trainer would wrap the model in nn.DataParallel (replicas sharing TRL's patched
    forward, and a batch the step counts do not expect)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    first = visible.split(",")[0] if visible else "0"
    return {"CUDA_VISIBLE_DEVICES": first}


def run_training(cmd: List[str], env: Mapping[str, str], job: Path, out_dir: Path) -> Dict:
    """Run a strategy's training command (its processes run tpt/training/worker.py on `job`) and
    return rank 0's result; a failure that was a full disk raises DiskFull."""
    log.info("train: %s", shlex.join(cmd))
    output = log_file_handle()  # the trainer's output goes to the run's log file (tpt.logs), or this process's
    try:
        done = subprocess.run(cmd, env=dict(env), stdout=output, stderr=subprocess.STDOUT if output else None)
    finally:
        if output is not None:
            output.close()
    if done.returncode != 0 and (code := no_space_reported(job, done.returncode)):
        raise disk_full(out_dir, code)
    if done.returncode != 0:
        raise LaunchError(
            f"training failed (exit code {done.returncode}); see the log above. Command: {shlex.join(cmd)}"
        )
    result = read_json(Path(read_json(job)["result"]))
    if not result:
        raise LaunchError("training ended without writing its result")
    return result
