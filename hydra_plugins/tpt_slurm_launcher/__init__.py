"""The `tpt_slurm` Hydra launcher (selected by cluster=slurm): one SLURM job per cell via submitit.

Hydra only accepts launchers from the hydra_plugins package; the helpers live in tpt/cluster.py,
whose docstring describes what this launcher adds to hydra-submitit-launcher's SlurmLauncher.
Each cell's config is composed once, at submit time, and travels with its job: a job (or its
requeue) never reads the checkout's conf/ again, and runs the code snapshot taken then.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, open_dict, read_write

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from tpt.cluster import (
    SNAPSHOT_MANIFEST,
    ClusterError,
    SigtermWatch,
    cell_label,
    check_partition,
    check_sbatch,
    describe_failure,
    fail,
    snapshot_code,
    snapshot_damage,
    submission_key,
    submitit_parameters,
)
from tpt.miniature import compose_miniature
from tpt.preflight import USER_ERRORS, checked

log = logging.getLogger(__name__)


class SlurmSweepLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            return self._launch(job_overrides, initial_job_idx)
        except ClusterError as e:
            fail(str(e))

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit  # imported when a sweep is submitted: Hydra loads every launcher plugin at start

        check_sbatch()
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        cells = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        configs = [self._compose(o, sweep_dir) for _, o in cells]
        for (idx, overrides), cfg in zip(cells, configs):
            try:  # what the job checks first, with `auto` resolved as the job resolves it
                checked(cfg)
            except USER_ERRORS as e:  # before anything is queued
                raise ClusterError(f"{cell_label(idx, overrides)}: {e}") from None
        for name in sorted({c.cluster.partition for c in configs if c.cluster.partition}):
            check_partition(name)
        from tpt.plan import misfits

        for (idx, overrides), cfg in zip(cells, configs):
            for misfit in misfits(cfg) if cfg.cluster.gpus else []:
                # an estimate: said, not refused (cluster.gpu_memory_gb sharpens it)
                log.warning("%s: %s (--plan shows the estimate)", cell_label(idx, overrides), misfit)

        code_dir = None
        if configs[0].cluster.snapshot:
            code_dir = snapshot_code(self._code_root(), sweep_dir / ".code")
            log.info("jobs run from a snapshot of the code: %s", code_dir)

        # Cells submitted with the same parameters share one job array.
        groups: Dict[str, List[int]] = defaultdict(list)
        for pos, cfg in enumerate(configs):
            groups[submission_key(cfg.cluster, code_dir)].append(pos)
        jobs: List[Any] = [None] * len(cells)
        for positions in groups.values():
            cluster = configs[positions[0]].cluster
            executor = submitit.AutoExecutor(
                folder=sweep_dir / ".submitit" / "%j", cluster="slurm", slurm_max_num_timeout=cluster.max_requeues
            )
            executor.update_parameters(name=f"tpt-{configs[0].name}", **submitit_parameters(cluster, code_dir))
            params = [(configs[p], "hydra.sweep.dir", cells[p][0], Singleton.get_state()) for p in positions]
            try:
                submitted = executor.map_array(self, *zip(*params))
            except submitit.core.utils.FailedJobError as e:
                raise ClusterError(f"sbatch refused the jobs: {e}") from None
            for p, job in zip(positions, submitted):
                jobs[p] = job
                log.info("\t%s : SLURM job %s", cell_label(*cells[p]), job.job_id)
        log.info("%d cell(s) submitted; waiting for them to finish (logs in %s)", len(jobs), sweep_dir / ".submitit")
        results = self._wait(jobs, cells)
        print_summaries(results, sweep_dir)
        return results

    def _compose(self, overrides: List[str], sweep_dir: Path) -> DictConfig:
        """A cell's config as its job will run it: with miniature=true, its miniature (whose resources are
        the CPU's, not the paper row's GPUs). The cell keeps the name of the overrides it was given."""

        def load(o: List[str]) -> DictConfig:
            return self.hydra_context.config_loader.load_sweep_config(self.config, o + [f"hydra.sweep.dir={sweep_dir}"])

        cfg = load(overrides)
        mini = compose_miniature(cfg, overrides, load)
        if mini is None:
            return cfg
        with read_write(mini.hydra.overrides):
            mini.hydra.overrides.task = cfg.hydra.overrides.task  # its run directory's name is the cell's own
        return mini

    def __call__(self, sweep_config: DictConfig, job_dir_key: str, job_num: int, singleton_state) -> JobReturn:
        """One cell, in its SLURM job: run the config composed at submit time (the parent class would
        compose it again here, from the checkout's conf/)."""
        import submitit

        Singleton.set_state(singleton_state)
        setup_globals()
        if (Path.cwd() / SNAPSHOT_MANIFEST).is_file() and (damaged := snapshot_damage(Path.cwd())):
            # the code this job was to run is not what was submitted: run nothing, name it
            raise ClusterError(
                f"the code snapshot this job runs from is damaged ({'; '.join(damaged)}); submit the sweep again "
                "(it takes a new snapshot)"
            )
        # read_write: a job requeued by submitit after the timeout warning runs again from the config its
        # first run checkpointed, which Hydra had made read-only
        with read_write(sweep_config.hydra.job), open_dict(sweep_config.hydra.job) as job:
            job.id = submitit.JobEnvironment().job_id
            job.num = job_num
        sigterm = SigtermWatch()  # after submitit's own handler, which it calls
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.FAILED:
            try:
                ret.return_value  # noqa: B018 (a property: raises the cell's exception, which Hydra kept)
            except Exception as failure:
                sigterm.wait_for_the_kill(failure)
        return ret

    def _wait(self, jobs: List[Any], cells: List[tuple]) -> List[JobReturn]:
        """Every job's result, in cell order; failures are collected, then reported together."""
        results, failures = [], []
        for job, (idx, overrides) in zip(jobs, cells):
            try:
                # task 0: a multi-node cell's job counts a task per node, but the cell runs in one task
                # (its srun step is --nodes=1 --ntasks=1), so no other task writes a result
                results.append(job.task(0).results()[0])
            except Exception as e:  # submitit's UncompletedJobError / FailedJobError, or an unpickling error
                state = job.watcher.get_state(job.job_id, mode="force")
                failures.append(describe_failure(job, idx, overrides, state, e))
        if failures:
            raise ClusterError(f"{len(failures)} of {len(jobs)} cell(s) failed:\n" + "\n".join(failures))
        return results

    def _code_root(self) -> Path:
        """The checkout holding the primary config folder (conf/), launch.py and tpt/."""
        for source in self.config.hydra.runtime.config_sources:
            if source.provider == "main" and source.schema == "file":
                return Path(source.path).parent
        raise ClusterError("cannot find the config folder to snapshot; set cluster.snapshot=false")


def print_summaries(results: Sequence[JobReturn], sweep_dir: Path) -> None:
    """What a local run prints at its end, for every cell of the sweep: its table and cost (the job
    wrote them into its run directory), then where the sweep's report is."""
    for ret in results:
        run_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir))
        summary = run_dir / "summary.md"
        if summary.is_file():
            print(f"\n{' '.join(ret.overrides) or '(defaults)'} ({run_dir})\n{summary.read_text()}", flush=True)
    print(f"The sweep's report: python -m tpt.report {sweep_dir}", flush=True)
