"""`cluster=slurm`: checks before submitting, the code snapshot, per-cell job parameters, failure
reports and a cell's answer to SLURM's SIGTERM (docs/design.md, "Clusters"). The launcher class
itself lives in hydra_plugins/tpt_slurm_launcher, where Hydra discovers launchers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from hydra.core.utils import filter_overrides
from omegaconf import OmegaConf

from tpt.io import Damaged, damage, manifest, publish_dir_once, read_json, unique_suffix, write_json

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The cluster cannot take the sweep, or some of its jobs failed; the message says which."""


def fail(message: str) -> None:
    """End the sweep driver with a message (no traceback: it would not help)."""
    print(f"tpt: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# --- checks before submitting -------------------------------------------------------------------
def check_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise ClusterError(
            "cluster=slurm needs SLURM's `sbatch` on PATH, and it was not found. Run the "
            "sweep on a machine that can submit jobs (a login node), or use cluster=local."
        )


def partitions() -> List[str]:
    out = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise ClusterError(f"`sinfo` failed (is the SLURM controller reachable?): {out.stderr.strip()}")
    return sorted(set(out.stdout.split()))


def check_partition(name: str | None) -> None:
    if name is None:
        return
    known = partitions()
    if name not in known:
        raise ClusterError(
            f"unknown SLURM partition {name!r} (cluster.partition or TPT_SLURM_PARTITION); "
            f"this cluster has: {', '.join(known) or 'none'}"
        )


# --- code snapshot --------------------------------------------------------------------------------
def code_files(root: Path) -> List[str]:
    """The files that make up the code: git's tracked and untracked-not-ignored files, or, outside
    a git checkout, launch.py, conf/, tpt/ and hydra_plugins/."""
    if shutil.which("git") and (root / ".git").exists():
        git = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        )
        return sorted(f for f in git.stdout.decode().split("\0") if f and (root / f).is_file())
    files = ["launch.py"] if (root / "launch.py").is_file() else []
    for folder in ("conf", "tpt", "hydra_plugins"):
        files += [
            str(p.relative_to(root)) for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    return sorted(files)


SNAPSHOT_MANIFEST = ".tpt-manifest.json"  # in a code snapshot: the size and sha256 of each of its files


def snapshot_code(root: Path, into: Path) -> Path:
    """Copy the code under `into/<content hash>/` (reused when the code has not changed and the copy is
    whole: a damaged one is named, put aside and copied again)."""
    files = code_files(root)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.encode() + b"\0" + (root / f).read_bytes() + b"\0")
    target = into / digest.hexdigest()[:16]
    if target.is_dir():
        problems = snapshot_damage(target)
        if not problems:
            return target
        log.warning("the code snapshot %s is damaged (%s); copying the code again", target, "; ".join(problems))
        aside = into / f".{target.name}{unique_suffix()}.drop"
        with contextlib.suppress(OSError):  # another sweep put it aside first
            target.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    partial = into / f".{target.name}.partial{unique_suffix()}"
    shutil.rmtree(partial, ignore_errors=True)
    for f in files:
        (partial / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, partial / f)
    write_json(partial / SNAPSHOT_MANIFEST, manifest(partial))
    publish_dir_once(partial, target)  # two sweeps snapshotting the same code: the same files either way
    return target


def snapshot_damage(code_dir: Path) -> List[str]:
    """What differs between a code snapshot's files and its manifest (nothing when whole)."""
    path = Path(code_dir) / SNAPSHOT_MANIFEST
    if not path.is_file():
        return [f"{path}: missing"]
    try:
        return damage(Path(code_dir), read_json(path))
    except Damaged as e:
        return [str(e)]


# --- job parameters and failures -----------------------------------------------------------------
def cell_label(idx: int, overrides: List[str]) -> str:
    """How logs and errors name a cell: its index and the overrides that make it."""
    return f"cell #{idx} ({' '.join(filter_overrides(overrides)) or 'no overrides'})"


def submitit_parameters(cluster, code_dir: Path | None) -> Dict[str, Any]:
    """sbatch parameters (through submitit) for one cell's `cluster` config."""
    extra = dict(OmegaConf.to_container(cluster.sbatch, resolve=True))
    extra["requeue"] = True  # a preempted job goes back to the queue and resumes from finished stages
    if code_dir is not None:
        extra["chdir"] = str(code_dir)  # run (and import tpt) from the snapshot
    params = {
        "slurm_partition": cluster.partition,
        "slurm_account": cluster.account,
        "slurm_qos": cluster.qos,
        "gpus_per_node": cluster.gpus or None,
        "cpus_per_task": cluster.cpus,
        "mem_gb": cluster.mem_gb,
        "timeout_min": cluster.timeout_min,
        "slurm_array_parallelism": cluster.array_parallelism,
        "slurm_setup": list(cluster.setup) or None,
        "slurm_additional_parameters": extra,
        "tasks_per_node": 1,
        "nodes": cluster.nodes,
    }
    # A cell runs once, as a one-task job step on the first node (on several nodes it starts its training
    # on every node itself: srun in tpt/training/distributed.py). A job step, not the batch shell: SLURM
    # sends the timeout warning (submitit's --signal=USR2@90, without B:) to job steps, so it reaches the
    # cell, which requeues; the training step ignores it. One node or many, the same path.
    params["slurm_srun_args"] = ["--nodes=1", "--ntasks=1"]
    return {k: v for k, v in params.items() if v is not None}


def submission_key(cluster, code_dir: Path | None) -> str:
    """Cells with equal keys can share one job array: same sbatch parameters, same requeue budget."""
    return json.dumps([cluster.max_requeues, submitit_parameters(cluster, code_dir)], sort_keys=True)


def describe_failure(job, idx: int, overrides: List[str], state: str, error: Exception) -> str:
    stderr = Path(job.paths.stderr)
    tail = ""
    if stderr.is_file():
        lines = stderr.read_text(errors="replace").strip().splitlines()[-8:]
        tail = "".join(f"\n      | {line}" for line in lines)
    return (
        f"  - {cell_label(idx, overrides)}: SLURM job {job.job_id}, state {state}: {first_line(error)}\n"
        f"    log: {stderr}{tail}"
    )


def first_line(error: BaseException) -> str:
    """An exception in one line: its message's first line, or its type's name when it has none."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# --- SLURM stopping a job -------------------------------------------------------------------------
# How long a cell that failed after SLURM's SIGTERM waits for the SIGKILL that follows it: SLURM's
# KillWait (30 s by default) or a preemption's GraceTime (per partition, usually minutes).
STOP_WAIT_S = 600


class SigtermWatch:
    """Notes when SIGTERM reaches the cell's process, then calls the handler it replaced (submitit's,
    which ignores it).

    SLURM stops a job (requeue, preemption, scancel, the time limit) with SIGTERM to every process of
    the job, then SIGKILL KillWait seconds later. The cell ignores the SIGTERM, but its children (the
    training processes, a vLLM engine) die of it, so the cell fails a moment later, and submitit would
    write that failure as the job's result before the SIGKILL: the sweep would report the cell failed
    while SLURM requeues its job. A cell that fails after a SIGTERM therefore reports nothing and
    waits for SLURM to end the job (`wait_for_the_kill`)."""

    def __init__(self) -> None:
        self.received_at: float | None = None
        self._previous = signal.getsignal(signal.SIGTERM) or signal.SIG_DFL  # None: not set from Python
        signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum, frame) -> None:
        if self.received_at is None:
            self.received_at = time.monotonic()
        if callable(self._previous):
            self._previous(signum, frame)
        else:  # no handler before this one (not under submitit): SIGTERM does what it did before
            signal.signal(signal.SIGTERM, self._previous)
            signal.raise_signal(signal.SIGTERM)

    def wait_for_the_kill(self, failure: BaseException, wait_s: float = STOP_WAIT_S) -> None:
        """After a SIGTERM: wait up to `wait_s` for SLURM's SIGKILL, so `failure` is never reported.
        Returns at once if no SIGTERM came (the failure is the cell's own), or when the wait is over
        (someone else sent the SIGTERM: the failure is reported then)."""
        if self.received_at is None:
            return
        log.warning(
            "the cell failed (%s: %s) after SIGTERM reached this job: SLURM is stopping it (requeue, "
            "preemption or scancel), so the failure is not its result; waiting up to %d s for SLURM's "
            "SIGKILL",
            type(failure).__name__,
            first_line(failure),
            wait_s,
        )
        time.sleep(max(0.0, self.received_at + wait_s - time.monotonic()))  # SIGKILL ends it sooner
        log.warning("no SIGKILL came within %d s of the SIGTERM: reporting the failure", wait_s)
