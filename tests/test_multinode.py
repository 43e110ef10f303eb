"""The paper's cluster setting for real: a SLURM of several nodes (scripts/slurm_local.sh's partition
`multi`: each node a slurmd in its own network and UTS namespace, with its own hostname and address,
two fake GPUs each) and the 70B row's job shape on it, with CPU processes in place of GPUs.

What this proves: the job's environment on each node is a cluster's, the cell's one-task job step
starts a training step on every node (the SLURM_NTASKS=1 trap of issue 44), the nodes meet at the
rendezvous on the first node's name, train one model together, and the cell goes on with it. What it
cannot: NCCL, GPU memory, FSDP's sharding of real weights (accelerate trains FSDP as DDP on CPU
processes: tests/test_fsdp_cpu.py has FSDP's own steps on gloo), a shared filesystem's latency
(tests/test_clusterfs.py)."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.test_slurm import cells, finish, job_ids, launch, metrics, slurm, sweep_args, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]


def test_two_nodes_are_two_hosts_with_a_clusters_environment(multi_node_cluster):
    out = slurm(
        multi_node_cluster,
        "srun",
        "--partition=multi",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--gpus-per-node=2",
        "bash",
        "-c",
        'echo "$(hostname) $SLURM_NODEID $SLURM_PROCID $SLURM_NTASKS $SLURM_JOB_NODELIST $CUDA_VISIBLE_DEVICES"',
    )
    rows = sorted(line.split() for line in out.splitlines())
    assert rows == [
        ["tpt-n1", "0", "0", "2", "tpt-n[1-2]", "0,1"],  # SLURM hands each node its two (fake) GPUs
        ["tpt-n2", "1", "1", "2", "tpt-n[1-2]", "0,1"],
    ], out


def test_the_nodes_reach_each_other_by_name(multi_node_cluster):
    """What the rendezvous needs: node 2 connects to a port node 1 listens on, by node 1's name."""
    script = (
        "import socket, os, sys\n"
        "if os.environ['SLURM_NODEID'] == '0':\n"
        "    s = socket.create_server(('', 29517)); c, addr = s.accept(); c.sendall(socket.gethostname().encode())\n"
        "else:\n"
        "    import time\n"
        "    for _ in range(100):\n"
        "        try: c = socket.create_connection(('tpt-n1', 29517), timeout=1); break\n"
        "        except OSError: time.sleep(0.1)\n"
        "    print('heard', c.recv(100).decode(), 'on', socket.gethostname())\n"
    )
    out = slurm(
        multi_node_cluster, "srun", "--partition=multi", "--nodes=2", "--ntasks-per-node=1", "python3", "-c", script
    )
    assert out.split() == ["heard", "tpt-n1", "on", "tpt-n2"], out


# The 70B row (conf/model/llama3_3_70b_instruct.yaml: 2 nodes, FSDP with offloaded parameters and
# activation checkpointing) with the tiny Llama, one fake GPU a node, 1 CPU and a little memory.
SEVENTY_B_SHAPE = [
    "model=llama3_3_70b_instruct",
    "model.gpus=1",
    "model.cpus=1",
    "model.mem_gb=4",
    "model.timeout_min=30",
    "cluster.partition=multi",
    "pruning=none",
    "data.size=4",
    "task.train_questions=4",
    "train.batch_size=1",
    "train.global_batch_size=2",
]


def test_the_70b_rows_job_shape_trains_on_both_nodes(multi_node_cluster, tiny_model_dir, tmp_path):
    """Submitted as a user submits it: one SLURM job of 2 nodes, the cell in a one-task step on the first,
    training's srun on both (machine ranks 0 and 1, a static rendezvous on tpt-n1), the model saved, and
    the round's eval on it. Without --ntasks in training's srun, SLURM starts rank 0 only, on one node,
    which then waits at the rendezvous: this test fails (its timeout) before issue 44's fix."""
    sweep = tmp_path / "sweep"
    code, log = finish(launch(multi_node_cluster, *sweep_args(tiny_model_dir, sweep, *SEVENTY_B_SHAPE)), timeout=840)
    assert code == 0, log[-4000:]
    [cell] = cells(sweep)
    assert [m["round"] for m in metrics(cell)] == [0, 1]
    result = json.loads((cell / "round_1" / "train" / "result.json").read_text())
    assert result["hosts"] == ["tpt-n1", "tpt-n2"], result  # machine rank 0 on the head node, 1 on the other
    assert result["steps"] == 2  # 4 examples, a global batch of 2 over the two nodes
    [script] = (sweep / ".submitit").glob("*/*_submission.sh")
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --gpus-per-node=1" in text and "--partition=multi" in text
    train_log = (cell / "launch.log").read_text()
    assert "srun --nodes=2 --ntasks=2" in train_log


# The one-node presets (conf/model/*.yaml) with a tiny model of their architecture, their GPUs as CPU
# processes: Gemma-2-9B trains FSDP over its GPUs (2 here, of its 4), Gemma-2-2B and Llama-3.2-1B in one
# process on one GPU, the 2B recomputing activations as its preset says.
ONE_NODE_PRESETS = [
    ("gemma2_9b_it", "gemma2", 2, "fsdp"),
    ("gemma2_2b_it", "gemma2", 1, "single"),
    ("llama3_2_1b_instruct", "llama", 1, "single"),
]


@pytest.mark.parametrize("preset, arch, gpus, strategy", ONE_NODE_PRESETS, ids=[p[0] for p in ONE_NODE_PRESETS])
def test_a_one_node_presets_job_shape_trains_on_a_compute_node(
    multi_node_cluster, tmp_path, preset, arch, gpus, strategy
):
    """Submitted as a user submits the row: one SLURM job on one node of `multi`, its GPUs asked for
    with --gpus-per-node, training with the preset's strategy over one process a GPU, then the eval."""
    from tests.tiny_model import build

    model = build(tmp_path / "model", arch=arch)
    sweep = tmp_path / "sweep"
    shape = [
        f"model={preset}",
        f"model.gpus={gpus}",
        f"model.cpus={gpus}",
        "model.mem_gb=4",
        "model.timeout_min=30",
        "model.tensor_parallel_size=1",
        "cluster.partition=multi",
        "pruning=none",
        "data.size=4",
        "task.train_questions=4",
        "train.batch_size=1",
        "train.global_batch_size=2",
    ]
    code, log = finish(launch(multi_node_cluster, *sweep_args(model, sweep, *shape)), timeout=840)
    assert code == 0, log[-4000:]
    [cell] = cells(sweep)
    assert [m["round"] for m in metrics(cell)] == [0, 1]
    train = cell / "round_1" / "train"
    result = json.loads((train / "result.json").read_text())
    assert len(result["hosts"]) == gpus and len(set(result["hosts"])) == 1  # one rank a GPU, on one node
    assert result["hosts"][0] in ("tpt-n1", "tpt-n2") and result["steps"] == 2
    assert json.loads((train / "train_job.json").read_text())["train"]["strategy"] == strategy
    [script] = (sweep / ".submitit").glob("*/*_submission.sh")
    text = script.read_text()
    assert "#SBATCH --nodes=1" in text and f"#SBATCH --gpus-per-node={gpus}" in text


def job_processes(job):
    """Every process of a SLURM job on any of the nodes (they share this machine's process table, and
    `scontrol listpids` asks only this machine's slurmd): those whose environment names the job."""
    mine = f"SLURM_JOB_ID={job}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mine in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:  # ended, or a kernel thread
            pass
    return pids


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def test_the_70b_shape_requeued_on_the_timeout_warning_resumes_on_both_nodes(
    multi_node_cluster, tiny_model_dir, tmp_path
):
    """SLURM's timeout warning lands while training runs on both nodes (both busy with the job): the cell
    requeues the job, SLURM ends the training steps on both nodes, the job waits for both again, starts
    over, skips its finished stages and trains on both nodes once more. As in tests/test_slurm.py, the
    job's processes are stopped while the warning is sent, so it lands mid-training, not after."""
    sweep = tmp_path / "sweep"
    proc = launch(multi_node_cluster, *sweep_args(tiny_model_dir, sweep, *SEVENTY_B_SHAPE))
    wait_for(lambda: list(sweep.glob("*/round_1/.train.partial*")), what="round 1 train to start", poll=0.01)
    [job] = job_ids(sweep)
    # the training step on both nodes: its worker processes carry SLURM_NODEID 0 and 1
    wait_for(lambda: len(training_nodes(job)) == 2, what="training to run on both nodes", poll=0.05)
    pids = job_processes(job)
    signal_all(pids, signal.SIGSTOP)
    slurm(multi_node_cluster, "scancel", "--signal=USR2", job)
    signal_all(pids, signal.SIGCONT)
    code, log = finish(proc, timeout=840)
    assert code == 0, log[-4000:]
    assert "Restarts=1" in slurm(multi_node_cluster, "scontrol", "show", "job", job)
    [cell] = cells(sweep)
    assert [m["round"] for m in metrics(cell)] == [0, 1]
    run_log = (cell / "launch.log").read_text()  # both runs of the job write to it
    assert "round 1 prune: finished earlier, skipping" in run_log
    assert run_log.count("round 1 train: starting") == 2, run_log[-3000:]
    assert run_log.count("srun --nodes=2 --ntasks=2") == 2
    result = json.loads((cell / "round_1" / "train" / "result.json").read_text())
    assert result["hosts"] == ["tpt-n1", "tpt-n2"], result


def training_nodes(job):
    """The nodes (SLURM_NODEID) on which a process of the job runs tpt's training worker."""
    nodes = set()
    for pid in job_processes(job):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tpt.training.worker" in cmd and b"accelerate" not in cmd:
            nodes |= {e.split(b"=", 1)[1] for e in env if e.startswith(b"SLURM_NODEID=")}
    return nodes


def test_multi_node_partition_lists_its_nodes(multi_node_cluster):
    nodes = subprocess.run(
        ["sinfo", "-h", "-p", "multi", "-N", "-o", "%N %G"], env=multi_node_cluster, capture_output=True, text=True
    ).stdout.split("\n")
    assert sorted(n.split()[0] for n in nodes if n) == ["tpt-n1", "tpt-n2"]
    assert all("gpu:2" in n for n in nodes if n)
