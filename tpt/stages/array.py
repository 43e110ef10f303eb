"""A stage's chunks as a SLURM job array (`think.array_tasks` / `eval.array_tasks` > 0).

The cell's own process (the driver) submits one array task per share of the pending chunks through
submitit, with the cell's cluster resources, and waits. Each task rebuilds the cell from its config
and run directory, generates its chunks and writes them to the stage's chunk folder; tasks never
touch anything else of the run directory, whose lock the driver keeps. Shares whose chunks are still
missing afterwards (a task cancelled, preempted or failed) are submitted again, up to
`cluster.max_requeues` times; then the stage merges the chunks as a local run would.
"""

from __future__ import annotations

import getpass
import logging
import subprocess
import time
from pathlib import Path
from typing import List, Sequence

from omegaconf import OmegaConf

from tpt.backends import release_all
from tpt.cell import Cell
from tpt.cluster import check_sbatch, first_line, submitit_parameters
from tpt.models import load_tokenizer
from tpt.preflight import prepare, typed
from tpt.rundir import RunDir
from tpt.runtime import tune_process
from tpt.stages.generation import Job, Plan, generate_chunks, plan, store_of

log = logging.getLogger(__name__)
POLL_S = 5.0  # how often the driver looks at the queue


def shares(chunks: Sequence[int], tasks: int) -> List[List[int]]:
    """Chunks dealt out to at most `tasks` tasks, round robin."""
    tasks = max(1, min(tasks, len(chunks)))
    return [list(chunks[t::tasks]) for t in range(tasks)]


def fan_out(cell: Cell, job: Job, p: Plan, pending: Sequence[int]) -> None:
    import submitit  # only a cell that sends chunks to SLURM needs it

    check_sbatch()
    store = store_of(cell, job)
    folder = cell.rundir.path / ".submitit" / f"round_{job.round}_{job.stage}"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    executor.update_parameters(name=f"tpt-{job.stage}-{job.round}", **submitit_parameters(cell.cfg.cluster, None))
    config = OmegaConf.to_container(cell.cfg, resolve=True)
    missing = list(pending)
    for attempt in range(cell.cfg.cluster.max_requeues + 1):
        parts = shares(missing, job.settings(cell).array_tasks)
        jobs = executor.map_array(
            run_task, [config] * len(parts), [str(cell.rundir.path)] * len(parts), [job] * len(parts), parts
        )
        log.info(
            "%s: %d chunks in SLURM array %s (%d tasks, attempt %d); logs in %s",
            job.desc,
            len(missing),
            jobs[0].job_id.split("_")[0],
            len(parts),
            attempt + 1,
            folder,
        )
        wait_until_dequeued(jobs)
        for task, part in zip(jobs, parts):
            if task.paths.result_pickle.exists():
                try:
                    task.result()
                    continue
                except Exception as e:  # failed: its chunks are looked for below
                    reason = first_line(e)
            else:  # cancelled, preempted or killed before it could write its result
                reason = f"SLURM state {task.watcher.get_state(task.job_id, mode='force')}"
            log.warning(
                "%s: array task %s (chunks %s) ended without finishing: %s", job.desc, task.job_id, part, reason
            )
        missing = [c for c in missing if store.load(c, p.chunk_keys[c]) is None]
        if not missing:
            return
        log.warning("%s: %d chunk(s) missing after the array; submitting them again", job.desc, len(missing))
    raise RuntimeError(
        f"{job.desc}: chunks {missing} still missing after {cell.cfg.cluster.max_requeues + 1} "
        f"array submissions; their logs are in {folder}"
    )


def wait_until_dequeued(tasks, poll_s: float = POLL_S) -> None:
    """Until no task is in SLURM's queue any more (finished, failed or cancelled). Not submitit's
    `result()`: it waits on sacct, which never hears of an array task cancelled while pending."""
    waiting = {t.job_id for t in tasks}
    user = getpass.getuser()
    while waiting:
        res = subprocess.run(
            ["squeue", "--noheader", "--array", "--user", user, "--format", "%i"], capture_output=True, text=True
        )
        if res.returncode == 0:  # else the controller is busy: ask again
            waiting &= set(res.stdout.split())
        else:
            log.warning("squeue failed (%s); asking again in %.0f s", res.stderr.strip(), poll_s)
        if waiting:
            time.sleep(poll_s)


def run_task(config: dict, run_path: str, job: Job, chunks: List[int]) -> int:
    """One array task: generate the given chunks of the cell's stage (skipping any already finished)."""
    tune_process()  # this SLURM job's process
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    cfg = typed(config)
    cell = Cell.open(prepare(cfg), RunDir(Path(run_path)))
    tokenizer = load_tokenizer(job.model.path, job.model.revision)
    p = plan(cell, job, tokenizer)
    store = store_of(cell, job)
    todo = [c for c in chunks if store.load(c, p.chunk_keys[c]) is None]
    try:
        generate_chunks(cell, job, p, todo, tokenizer)
    finally:
        release_all()
    return len(todo)
