"""cluster=slurm's config: resources from the model preset, queue names from the environment."""
from tests.conftest import compose
from tpt.cluster import submitit_parameters


def test_resources_come_from_the_model_preset_and_queue_names_from_the_environment(monkeypatch):
    monkeypatch.setenv("TPT_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("TPT_SLURM_ACCOUNT", "lab")
    monkeypatch.delenv("TPT_SLURM_QOS", raising=False)
    cfg = compose(["cluster=slurm", "model=gemma2_9b_it", "cluster.setup=[module load cuda]",
                   "+cluster.sbatch.constraint=h100"])
    params = submitit_parameters(cfg.cluster, code_dir=None)
    assert params["slurm_partition"] == "gpu" and params["slurm_account"] == "lab" and "slurm_qos" not in params
    assert (params["gpus_per_node"], params["cpus_per_task"], params["mem_gb"], params["timeout_min"]) == (4, 32, 256, 1440)
    assert params["slurm_setup"] == ["module load cuda"]
    assert params["slurm_additional_parameters"] == {"constraint": "h100", "requeue": True}
    assert params["slurm_array_parallelism"] == 64


def test_config_overrides_beat_the_preset_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TPT_SLURM_PARTITION", "gpu")
    cfg = compose(["cluster=slurm", "model=llama3_2_1b_instruct", "cluster.partition=debug", "cluster.gpus=2",
                   "cluster.timeout_min=30"])
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
