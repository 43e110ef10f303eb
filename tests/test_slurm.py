"""cluster=slurm against a real SLURM (scripts/slurm_local.sh): sbatch, requeue, snapshot, failures."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, outcome, tiny_overrides
from tpt.cluster import code_files

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]  # jobs queue, start and requeue


def launch(env, *args, cwd=ROOT):
    return subprocess.Popen(
        [sys.executable, str(Path(cwd) / "launch.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def sweep_args(model_dir, sweep_dir, *extra):
    cell = [o for o in tiny_overrides(model_dir) if not o.startswith("name=")]
    return ["-m", "cluster=slurm", *cell, *extra, f"hydra.sweep.dir={sweep_dir}"]


def cells(sweep_dir):
    return sorted(p for p in Path(sweep_dir).iterdir() if (p / "metrics.jsonl").is_file())


def metrics(run_dir):
    return [json.loads(l) for l in (Path(run_dir) / "metrics.jsonl").open()]


def slurm(env, *cmd):
    return subprocess.run(list(cmd), env=env, capture_output=True, text=True, check=True, timeout=60).stdout


def job_ids(sweep_dir):
    """SLURM job ids of a sweep, from submitit's per-job folders."""
    return sorted(
        p.name
        for p in (Path(sweep_dir) / ".submitit").iterdir()
        if p.is_dir() and p.name[0].isdigit() and any(p.glob("*_submitted.pkl"))
    )


def wait_for(predicate, timeout=300, what="condition", poll=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_goes_through_sbatch_with_per_cell_resources(slurm_cluster, tiny_model_dir, tmp_path):
    sweep = tmp_path / "sweep"
    code, log = finish(launch(slurm_cluster, *sweep_args(tiny_model_dir, sweep, "pruning=gt,none", "model.cpus=1,2")))
    assert code == 0, log[-4000:]
    done = cells(sweep)
    assert len(done) == 4 and all([m["round"] for m in metrics(c)] == [0, 1] for c in done)
    # Every cell ran as a SLURM job that finished; cells with equal resources shared an array.
    ids = job_ids(sweep)
    assert len(ids) == 4
    arrays = ",".join(sorted({i.split("_")[0] for i in ids}))
    # The driver returns once each result is on disk; SLURM's accounting may lag a moment behind.
    wait_for(
        lambda: (
            slurm(slurm_cluster, "sacct", "-X", "-n", "-P", "-o", "State", "-j", arrays).split() == ["COMPLETED"] * 4
        ),
        timeout=60,
        what="sacct to show 4 COMPLETED jobs",
    )
    scripts = [p.read_text() for p in (sweep / ".submitit").glob("*/*_submission.sh")]
    assert len(scripts) == 2  # one array per resource shape
    assert sorted(s.count("--cpus-per-task=1") + 2 * s.count("--cpus-per-task=2") for s in scripts) == [1, 2]
    for s in scripts:
        assert "#SBATCH --requeue" in s and "#SBATCH --mem=8GB" in s and "#SBATCH --time=60" in s
        assert f"#SBATCH --chdir={sweep}/.code/" in s  # jobs run from the code snapshot


# A cell that trains in round 1 (pruning=none keeps every sample). The tests signal its job once round 1
# train has started: its training process takes seconds to start, so the signal always lands inside
# that stage, and nothing needs to make the cell slow.
REQUEUED_CELL = [
    "pruning=none",
    "task.train_questions=8",
    "think.max_new_tokens=24",
    "eval.max_new_tokens=24",
    "data.size=6",
]


def run_locally(tiny_model_dir, cell, run_dir):
    """The tiny cell with `cell`'s overrides run by launch.py on this machine, undisturbed: the run a
    SLURM test's cell must end like."""
    ref = subprocess.run(
        [sys.executable, "launch.py", *tiny_overrides(tiny_model_dir), *cell, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def requeue_reference(tiny_model_dir, tmp_path_factory):
    """REQUEUED_CELL run locally: what a requeued job must end with."""
    return run_locally(tiny_model_dir, REQUEUED_CELL, tmp_path_factory.mktemp("reference"))


def submitted_while_training(env, tiny_model_dir, sweep):
    """REQUEUED_CELL submitted, once its round 1 train has started: (launcher process, job id). Not
    right after think: prune takes milliseconds, and a stop landing between two stages interrupts none."""
    proc = launch(env, *sweep_args(tiny_model_dir, sweep, *REQUEUED_CELL))
    wait_for(lambda: list(sweep.glob("*/round_1/.train.partial*")), what="round 1 train to start", poll=0.01)
    [job] = job_ids(sweep)
    return proc, job


def test_a_requeued_job_resumes_from_its_finished_stages(slurm_cluster, tiny_model_dir, requeue_reference, tmp_path):
    """SLURM stops a job it requeues (or preempts) with SIGTERM to its processes and SIGKILL KillWait
    seconds later (30 s by default). The SIGTERM kills the cell's training process and the cell fails
    inside that window: it must not report the failure (CI saw this race once). The test widens the
    window: it sends the SIGTERM to the cell's job step (not to the batch script's srun, which would
    cancel the step) and requeues once the cell has failed, so the SIGKILL always comes last."""
    sweep = tmp_path / "sweep"
    proc, job = submitted_while_training(slurm_cluster, tiny_model_dir, sweep)
    wait_for(
        lambda: any("tpt.training.worker" in cmdline(pid) for pid in job_pids(slurm_cluster, job, "0")),
        what="the training process to start",
    )
    assert signal_job(slurm_cluster, job, signal.SIGTERM, step="0")
    [run_log] = sweep.glob("*/launch.log")
    waiting = "SLURM is stopping it (requeue, preemption or scancel), so the failure is not its result"
    wait_for(
        lambda: proc.poll() is not None or waiting in run_log.read_text(),
        what="the cell to fail and wait for the SIGKILL",
    )
    assert proc.poll() is None, finish(proc)[1][-4000:]  # the driver must not have a result yet
    assert "the cell failed (LaunchError: training failed (exit code -15)" in run_log.read_text()
    assert not list(sweep.glob("*/round_1/eval/DONE.json"))
    slurm(slurm_cluster, "scontrol", "requeue", job)
    restarted_job_resumes(slurm_cluster, job, proc, sweep, requeue_reference)


def job_pids(env, job, step=None):
    """The processes of the job's steps, or of one step (the cell runs as step "0")."""
    listing = [line.split() for line in slurm(env, "scontrol", "listpids", job).splitlines()[1:]]
    return [int(f[0]) for f in listing if f and f[0].isdigit() and step in (None, f[2])]  # PID JOBID STEPID ...


def signal_job(env, job, sig, step=None):
    """Send `sig` to every process of the job's steps (as SLURM's own signals reach them), or of one
    step; their pids."""
    pids = job_pids(env, job, step)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # it has ended
        return ""


def restarted_job_resumes(env, job, proc, sweep, reference):
    """The job was requeued mid-run: it starts again, skips its finished stages, restarts the one it was
    in, and ends with the metrics of an undisturbed local run."""
    # SLURM holds a requeued job back for AuthInfo's cred_expire + 1 s (10 + 1 on scripts/slurm_local.sh's
    # cluster). Starting it sooner (scontrol update StartTime=now) can land in the second its old
    # credential was revoked, and slurmd kills it: "Job credential revoked", state FAILED (seen in CI).
    code, log = finish(proc)
    assert code == 0, log[-4000:]

    # The driver returns once the restarted job wrote its result: wait for it to leave the queue too.
    def gone():  # squeue lists it while pending or running, and errors once SLURM forgets it
        q = subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True)
        return q.returncode != 0 or not q.stdout.strip()

    wait_for(gone, what="the job to leave the queue")
    [cell] = cells(sweep)
    assert outcome(metrics(cell)) == outcome(metrics(reference))
    assert "Restarts=1" in slurm(env, "scontrol", "show", "job", job)
    run_log = (cell / "launch.log").read_text()  # both runs of the job write to it
    assert run_log.count("round 0 eval: starting") == 1 and "round 0 eval: finished earlier, skipping" in run_log
    assert "round 1 think: finished earlier, skipping" in run_log
    assert "round 1 prune: finished earlier, skipping" in run_log
    # The stage the requeue interrupted started again (a run that had ended first would only skip).
    restarted = [s for s in ("prune", "train", "eval") if run_log.count(f"round 1 {s}: starting") == 2]
    assert restarted == ["train"], run_log[-3000:]


def test_the_timeout_warning_reaches_the_cell_which_requeues_itself(
    slurm_cluster, tiny_model_dir, requeue_reference, tmp_path
):
    """SLURM's timeout warning (submitit's --signal=USR2@90, no B:) goes to job steps, not the batch shell.
    Every cell, multi-node ones included (tests/test_distributed.py), runs as a one-task job step, so
    the warning reaches submitit in the cell, which requeues the job; it resumes from its finished stages.
    `scancel --signal=USR2` sends it the way SLURM does, to the steps."""
    sweep = tmp_path / "sweep"
    proc, job = submitted_while_training(slurm_cluster, tiny_model_dir, sweep)
    (script,) = [p.read_text() for p in (sweep / ".submitit").glob("*/*_submission.sh")]
    assert "--nodes=1 --ntasks=1" in script and "--signal=USR2@90" in script
    signal_job(slurm_cluster, job, signal.SIGSTOP)  # so the warning lands mid-run, not after the end
    assert not list(sweep.glob("*/round_1/eval/DONE.json")), "the job finished before the warning"
    slurm(slurm_cluster, "scancel", "--signal=USR2", job)
    signal_job(slurm_cluster, job, signal.SIGCONT)
    restarted_job_resumes(slurm_cluster, job, proc, sweep, requeue_reference)


def test_jobs_run_from_the_snapshot_taken_at_submit_time(slurm_cluster, tiny_model_dir, tmp_path):
    checkout = tmp_path / "checkout"
    for f in code_files(ROOT):
        (checkout / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, checkout / f)
    sweep = tmp_path / "sweep"
    # Held in the queue until the checkout has been edited.
    proc = launch(slurm_cluster, *sweep_args(tiny_model_dir, sweep, "+cluster.sbatch.hold=true"), cwd=checkout)
    wait_for(lambda: (sweep / ".submitit").is_dir() and job_ids(sweep), what="submission")
    loop = checkout / "tpt" / "loop.py"
    loop.write_text('raise RuntimeError("edited after submission")\n' + loop.read_text())
    arith = checkout / "conf" / "task" / "arith.yaml"
    arith.write_text(arith.read_text().replace("few_shot: 2", "few_shot: 9"))
    for job in job_ids(sweep):
        slurm(slurm_cluster, "scontrol", "release", job.split("_")[0])
    code, log = finish(proc)
    assert code == 0, log[-4000:]
    [cell] = cells(sweep)
    assert "edited after submission" not in log
    pinned = (cell / "run_config.yaml").read_text()
    assert "few_shot: 2" in pinned and "few_shot: 9" not in pinned


def test_a_job_that_dies_is_named_with_its_log(slurm_cluster, tiny_model_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = launch(
        slurm_cluster,
        *sweep_args(tiny_model_dir, sweep, "pruning=none", "think.max_new_tokens=64", "task.train_questions=16"),
    )
    # Cancelled once the cell has started: its stages take seconds more, so the job never ends first
    # (and if it did, its state would read COMPLETED and the test fail).
    wait_for(lambda: list(sweep.glob("*/launch.log")), what="the cell to start")
    [job] = job_ids(sweep)
    slurm(slurm_cluster, "scancel", job)
    code, log = finish(proc)
    assert code == 1
    assert f"SLURM job {job}, state CANCELLED" in log, log[-3000:]
    assert f"log: {sweep}/.submitit/{job}/{job}_0_log.err" in log


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["cluster.partition=nope"],
            "unknown SLURM partition 'nope' (cluster.partition or TPT_SLURM_PARTITION); this cluster has: debug",
        ),
        (["data.size=0"], "tpt: error: cell #0 (cluster=slurm "),
        (["data.size=0"], "invalid config: data.size must be a positive number"),
    ],
)
def test_bad_cluster_input_fails_before_anything_is_queued(slurm_cluster, tiny_model_dir, tmp_path, args, message):
    sweep = tmp_path / "sweep"
    code, log = finish(launch(slurm_cluster, *sweep_args(tiny_model_dir, sweep, *args)))
    assert code != 0 and message in log, log[-3000:]
    assert not (sweep / ".submitit").exists()


def test_missing_sbatch_is_named(tiny_model_dir, tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # nothing on PATH: no sbatch
    code, log = finish(launch(env, *sweep_args(tiny_model_dir, tmp_path / "sweep")))
    assert code == 1 and "cluster=slurm needs SLURM's `sbatch` on PATH" in log, log[-3000:]


def test_cluster_slurm_without_multirun_says_add_m(tiny_model_dir, tmp_path):
    res = subprocess.run(
        [sys.executable, "launch.py", "cluster=slurm", f"hydra.run.dir={tmp_path}/run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "add -m" in res.stderr
    assert not (tmp_path / "run" / "run_config.yaml").exists()


def test_a_paper_table_miniature_goes_to_slurm_as_a_cpu_job(slurm_cluster, tmp_path):
    """Table 6's 70B row asks for 2 nodes x 8 GPUs at the paper's setting; its miniature is submitted
    with the embedded model's resources (this SLURM has no GPU, so the row's would never start)."""
    sweep = tmp_path / "sweep"
    small = [
        "backend=hf",
        "cache=off",
        "task.eval_questions=4",
        "task.train_questions=4",
        "think.n=2",
        "eval.n=2",
        "eval.k=[1,2]",
        "think.max_new_tokens=16",
        "eval.max_new_tokens=16",
        "data.scale=0.0005",
    ]  # 6k examples -> 3 of the 4 questions (a bigger size is refused)
    code, log = finish(
        launch(
            slurm_cluster,
            "-m",
            "+experiment=table6",
            "row=t6_llama70b",
            "miniature=true",
            "cluster=slurm",
            *small,
            f"hydra.sweep.dir={sweep}",
        )
    )
    assert code == 0, log[-4000:]
    (cell,) = cells(sweep)
    assert [m["round"] for m in metrics(cell)] == [0, 1]
    pinned = OmegaConf.load(cell / "run_config.yaml")
    assert (pinned.paper_row, pinned.model.name, pinned.task.eval_questions) == ("t6_llama70b", "smollm2_135m", 4)
    (script,) = [p.read_text() for p in (sweep / ".submitit").glob("*/*_submission.sh")]
    assert "#SBATCH --nodes=1" in script and "--gpus" not in script


def test_the_default_runs_on_a_cpu_partition_and_the_sweep_ends_with_its_tables(
    slurm_cluster, vllm_tiny_dir, real_vllm, tmp_path
):
    """`python launch.py -m cluster=slurm` as on the embedded default: backend=auto, resolved at submit as
    the job resolves it, is vLLM's CPU build on a node without GPUs (it once passed submit and failed in the
    job); the driver prints each cell's table and where the report is, as a local run does."""
    from tests.conftest import TINY_KV_CACHE_GB

    sweep = tmp_path / "sweep"
    cell = [o for o in tiny_overrides(vllm_tiny_dir) if not o.startswith(("name=", "backend="))]
    code, log = finish(
        launch(
            slurm_cluster,
            "-m",
            "cluster=slurm",
            *cell,
            f"backend.kv_cache_gb={TINY_KV_CACHE_GB}",
            f"hydra.sweep.dir={sweep}",
        )
    )
    assert code == 0, log[-4000:]
    (done,) = cells(sweep)
    assert json.loads((done / "preflight.json").read_text())["decided"] == {"backend.name": "vllm"}
    assert "round | Pass@1 | Pass@2" in log and f"The sweep's report: python -m tpt.report {sweep}" in log


ARRAY_CELL = ["pruning=none", "task.train_questions=6", "think.chunk_size=2", "think.max_new_tokens=16"]


@pytest.fixture(scope="module")
def array_reference(tiny_model_dir, tmp_path_factory):
    """The job-array tests' cell run locally in one process: what the array's cell must end with."""
    return run_locally(tiny_model_dir, ARRAY_CELL, tmp_path_factory.mktemp("array-reference"))


@pytest.mark.parametrize("when", ["pending", "running"])
def test_a_stage_fanned_out_as_a_job_array_survives_a_cancelled_task(
    slurm_cluster, tiny_model_dir, array_reference, tmp_path, when
):
    """think in 3 array tasks, one cancelled (still queued, or at work): the driver submits its chunk
    again and the cell ends with the samples a local run has."""
    cell, local = tiny_overrides(tiny_model_dir) + ARRAY_CELL, array_reference
    run_dir = tmp_path / "array"
    proc = launch(slurm_cluster, *cell, "think.array_tasks=3", f"hydra.run.dir={run_dir}")
    folder = run_dir / ".submitit" / "round_1_think"
    # The tasks take both of the node's cores, so they run one after another: task 1 waits for task 0.
    started = "*_1/*_1_0_log.out" if when == "running" else "*_1"
    wait_for(lambda: folder.is_dir() and any(folder.glob(started)), what=f"array task 1 {when}")
    [task] = [p.name for p in folder.iterdir() if p.name.endswith("_1")]
    slurm(slurm_cluster, "scancel", task)  # task 1 of the array: chunk 1
    code, log = finish(proc)
    assert code == 0, log[-4000:]
    assert f"array task {task} (chunks [1]) ended without finishing" in log, log[-4000:]
    assert "1 chunk(s) missing after the array; submitting them again" in log
    assert len({p.name.split("_")[0] for p in folder.iterdir() if "_" in p.name}) == 2  # a second array
    for name in ("samples.jsonl", "prompts.jsonl"):
        assert (run_dir / "round_1" / "think" / name).read_bytes() == (local / "round_1" / "think" / name).read_bytes()
    assert outcome(metrics(run_dir)) == outcome(metrics(local))


def test_a_step_inside_the_cells_one_task_step_starts_every_task_it_asks_for(slurm_cluster, tmp_path):
    """What the training's srun meets inside a cell's job step (`--nodes=1 --ntasks=1`): SLURM_NTASKS=1
    in its environment, which srun reads as -n 1 unless told otherwise. Reproduced on one node with two
    tasks per node (issue 44): without --ntasks the inner step starts one task, with it both; tpt's
    multi-node command says --ntasks (tests/test_distributed.py)."""
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        'srun --nodes=1 --ntasks=1 bash -c "'
        "srun --nodes=1 --ntasks-per-node=2 --overlap bash -c 'echo plain \\$SLURM_PROCID' ; "
        "srun --nodes=1 --ntasks=2 --ntasks-per-node=2 --overlap bash -c 'echo explicit \\$SLURM_PROCID'\"\n"
    )
    out = tmp_path / "out.txt"
    slurm(slurm_cluster, "sbatch", "--wait", "--ntasks=2", "--cpus-per-task=1", f"--output={out}", str(script))
    lines = out.read_text().split()
    assert lines.count("plain") == 1, out.read_text()  # the bug: one task where two were asked for
    assert lines.count("explicit") == 2, out.read_text()
