"""cluster=slurm's config: resources from the model preset, queue names from the environment; how a cell
takes the SIGTERM that SLURM sends when it stops a job (the whole story is in test_slurm.py)."""

import subprocess
import sys

from tests.conftest import ROOT, compose
from tpt.cluster import submitit_parameters


def test_resources_come_from_the_model_preset_and_queue_names_from_the_environment(monkeypatch):
    monkeypatch.setenv("TPT_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("TPT_SLURM_ACCOUNT", "lab")
    monkeypatch.delenv("TPT_SLURM_QOS", raising=False)
    cfg = compose(
        ["cluster=slurm", "model=gemma2_9b_it", "cluster.setup=[module load cuda]", "+cluster.sbatch.constraint=h100"]
    )
    params = submitit_parameters(cfg.cluster, code_dir=None)
    assert params["slurm_partition"] == "gpu" and params["slurm_account"] == "lab" and "slurm_qos" not in params
    assert (params["gpus_per_node"], params["cpus_per_task"], params["mem_gb"], params["timeout_min"]) == (
        4,
        32,
        256,
        1440,
    )
    assert params["slurm_setup"] == ["module load cuda"]
    assert params["slurm_additional_parameters"] == {"constraint": "h100", "requeue": True}
    assert params["slurm_array_parallelism"] == 64


def test_config_overrides_beat_the_preset_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TPT_SLURM_PARTITION", "gpu")
    cfg = compose(
        [
            "cluster=slurm",
            "model=llama3_2_1b_instruct",
            "cluster.partition=debug",
            "cluster.gpus=2",
            "cluster.timeout_min=30",
        ]
    )
    params = submitit_parameters(cfg.cluster, code_dir=tmp_path)
    assert params["slurm_partition"] == "debug" and params["gpus_per_node"] == 2 and params["timeout_min"] == 30
    assert params["slurm_additional_parameters"]["chdir"] == str(tmp_path)


def test_cluster_choice_stays_out_of_the_cell_directory():
    """The same cell run locally and on SLURM shares one run directory (and resumes across them)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tpt.compose import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for cluster in (["cluster=local"], ["cluster=slurm", "cluster.gpus=2", "cluster.partition=debug"]):
            cfg = hydra_compose(config_name="config", overrides=[*cluster, "pruning=none"], return_hydra_config=True)
            assert cfg.hydra.run.dir == "outputs/tpt/pruning=none"


def watched(body: str) -> subprocess.CompletedProcess:
    """`body` run in a fresh Python (it signals itself) after `watch = SigtermWatch()`."""
    script = "import os, signal, time\nfrom tpt.cluster import SigtermWatch\n" + body
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_sigterm_is_noted_and_passed_to_the_handler_it_replaced():
    done = watched("""
seen = []
signal.signal(signal.SIGTERM, lambda *a: seen.append("submitit's handler"))
watch = SigtermWatch()
watch.wait_for_the_kill(RuntimeError("the cell's own failure"))  # no SIGTERM yet: returns at once
assert watch.received_at is None
os.kill(os.getpid(), signal.SIGTERM)
assert seen == ["submitit's handler"] and watch.received_at is not None
start = time.monotonic()
watch.wait_for_the_kill(RuntimeError("training failed (exit code -15)"), wait_s=2)
print(time.monotonic() - start)
""")
    assert done.returncode == 0, done.stderr
    assert 1.9 < float(done.stdout) < 2.9, done.stdout  # 2 s from the SIGTERM, which came just before
    assert "the cell failed (RuntimeError: training failed (exit code -15)) after SIGTERM" in done.stderr
    assert "no SIGKILL came within 2 s of the SIGTERM: reporting the failure" in done.stderr
    assert "own failure" not in done.stderr


def test_without_a_handler_before_it_a_sigterm_still_ends_the_process():
    done = watched("""
watch = SigtermWatch()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("survived")
""")
    assert done.returncode == -15 and "survived" not in done.stdout
