"""Training beyond one process: the accelerate commands per strategy, multi-node under SLURM, the
model presets' settings, Gemma's chat handling, and a real 2-process DDP round on CPU."""

from __future__ import annotations

import json

import pytest

from tests.conftest import compose, tiny_overrides
from tpt import loop
from tpt.cluster import submitit_parameters
from tpt.config import ConfigError
from tpt.prompt import build_messages
from tpt.training.distributed import ACCELERATE_CONFIGS, LaunchError, write_job
from tpt.training.strategies import STRATEGIES
from tpt.validate import validate


def train_cfg(strategy, processes, nodes, checkpointing):
    return compose(
        [
            f"model.train_strategy={strategy}",
            f"model.gpus={processes}",
            f"model.nodes={nodes}",
            f"model.gradient_checkpointing={checkpointing}",
            f"train.global_batch_size={processes * nodes}",
        ]
    ).train


def command(strategy, processes, nodes, job, checkpointing=False, env=None):
    cmd, _ = STRATEGIES[strategy].command(
        job, train_cfg(strategy, processes, nodes, checkpointing), cpu=False, env={} if env is None else env
    )
    return cmd


def test_single_node_fsdp_command(tmp_path):
    cmd = command("fsdp", 4, 1, tmp_path / "job.json", checkpointing=True)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(ACCELERATE_CONFIGS / "fsdp.yaml")
    assert cmd[cmd.index("--num_processes") + 1] == "4" and cmd[cmd.index("--num_machines") + 1] == "1"
    assert cmd[cmd.index("--fsdp_activation_checkpointing") + 1] == "true"
    assert cmd[-3:] == ["-m", "tpt.training.worker", str(tmp_path / "job.json")]
    assert "--mixed_precision" not in cmd  # bf16 from the config on GPUs
    assert cmd[cmd.index("--main_process_port") + 1] == "0"  # a free port: two jobs may share a node


def test_a_worker_trains_the_job_it_is_given(tiny_model_dir, tmp_path):
    """What each process of `accelerate launch` runs, here as a world of one in this process: it reads
    the job tpt wrote, trains, saves the model and (as rank 0) writes the result the parent reads."""
    from tpt.models import ModelRef
    from tpt.training import worker
    from tpt.training.sft import to_conversations

    examples = to_conversations(
        [{"question": f"{i} + 1?", "completion": f"#### {i + 1}"} for i in range(4)],
        lambda q: build_messages(q, "Solve."),
    )
    cfg = compose(["train.batch_size=2", "train.global_batch_size=2", "train.lr=1e-3"]).train
    job = write_job(ModelRef(str(tiny_model_dir), None, lambda: "tiny"), examples, tmp_path / "model", cfg)
    worker.main(str(job))
    result = json.loads((tmp_path / "train_worker_result.json").read_text())
    assert result["examples"] == 4 and result["steps"] == 2 and result["train_loss"] > 0
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_multi_node_command_runs_once_per_node_with_a_rendezvous(tmp_path, slurm_cluster):
    env = {**slurm_cluster, "SLURM_JOB_NODELIST": "gpu[07-08]"}  # scontrol expands the list
    command("fsdp", 8, 2, tmp_path / "job.json", env=env)
    env["SLURM_CPUS_PER_TASK"] = "64"
    cmd = command("fsdp", 8, 2, tmp_path / "job.json", env=env)
    assert (
        cmd[:9]
        == [
            "srun",
            "--nodes=2",
            "--ntasks=2",  # not the cell's step's SLURM_NTASKS=1, which would start rank 0's node only
            "--ntasks-per-node=1",
            "--overlap",
            "--gpus-per-node=8",
            "--kill-on-bad-exit=1",
            "--cpus-per-task=64",
            "bash",
        ]
        and cmd[9] == "-c"
    )
    per_node = cmd[10]
    assert per_node.startswith("trap '' USR2; exec ")  # the timeout warning is the cell's, not training's
    assert "--num_processes 16 --num_machines 2" in per_node
    assert "--main_process_ip gpu07" in per_node and "--rdzv_backend static" in per_node
    assert "--machine_rank $SLURM_NODEID" in per_node  # expanded by each node's shell


def test_multi_node_outside_an_allocation_is_refused(tmp_path):
    with pytest.raises(LaunchError, match="inside a SLURM allocation"):
        command("ddp", 8, 2, tmp_path / "job.json", env={})


@pytest.mark.parametrize(
    "preset, strategy, procs, nodes, ckpt, tp, lr, system_role",
    [
        ("gemma2_2b_it", "single", 1, 1, True, 1, 1e-6, False),
        ("gemma2_9b_it", "fsdp", 4, 1, True, 2, 1e-6, False),
        ("llama3_2_1b_instruct", "single", 1, 1, False, 1, 1e-5, True),
        ("llama3_3_70b_instruct", "fsdp", 8, 2, True, 8, 1e-5, True),
    ],
)
def test_model_presets_carry_the_paper_settings(preset, strategy, procs, nodes, ckpt, tp, lr, system_role):
    cfg = compose([f"model={preset}", "task=gsm8k", "backend=vllm", "cluster=slurm"])
    validate(cfg)
    t = cfg.train
    assert (t.strategy, t.processes_per_node, t.nodes, t.gradient_checkpointing) == (strategy, procs, nodes, ckpt)
    assert (cfg.model.tensor_parallel_size, cfg.model.lr, cfg.model.system_role) == (tp, lr, system_role)
    params = submitit_parameters(cfg.cluster, None)
    assert params["nodes"] == nodes and params["gpus_per_node"] == procs
    # one node or many: the cell is one task, a job step, so the timeout warning reaches it
    # (tests/test_slurm.py); on several nodes it starts its own srun for training
    assert params["slurm_srun_args"] == ["--nodes=1", "--ntasks=1"] and "slurm_use_srun" not in params


def test_impossible_training_layouts_are_rejected():
    with pytest.raises(ConfigError, match="train.strategy must be one of"):
        validate(compose(["model.train_strategy=zero9"]))
    with pytest.raises(ConfigError, match="needs >= 1 process per node"):
        validate(compose(["model.train_strategy=fsdp"]))  # the CPU default has gpus: 0
    with pytest.raises(ConfigError, match="tensor_parallel_size = 8 needs at least as many GPUs"):
        validate(compose(["model=llama3_3_70b_instruct", "backend=vllm", "cluster=slurm", "cluster.gpus=4"]))
    validate(compose(["backend=vllm", "cluster=slurm"]))  # a CPU partition: vLLM's CPU build, one engine
    with pytest.raises(ConfigError, match="tensor_parallel_size = 2 needs GPUs"):
        validate(compose(["backend=vllm", "cluster=slurm", "model.tensor_parallel_size=2"]))


GEMMA_LIKE_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_gemma_presets_fold_the_system_prompt_into_the_first_user_turn(tiny_model_dir):
    """Gemma's template refuses a system role; with system_role: false the prompt never has one."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = GEMMA_LIKE_TEMPLATE
    cfg = compose(["model=gemma2_2b_it", "task=gsm8k", "task.system_prompt=Be brief."])
    shot = compose(["task=arith"])  # any worked example
    from tpt.tasks import load_task

    example = load_task(shot.task).few_shot[0]
    folded = build_messages(
        "Q?", "Solve.", [(example.question, example.solution)], cfg.task.system_prompt, cfg.model.system_role
    )
    assert [m["role"] for m in folded] == ["user", "assistant", "user"]
    assert folded[0]["content"].startswith("Be brief.\n\nSolve.")
    text = tok.apply_chat_template(folded, tokenize=False, add_generation_prompt=True)
    assert text.count("<start_of_turn>user") == 2 and text.endswith("<start_of_turn>model\n")
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(build_messages("Q?", "Solve.", (), "Be brief.", True), tokenize=False)


@pytest.mark.e2e
def test_a_round_trained_with_tpts_fsdp_strategy_on_cpu_processes(tiny_model_dir, tmp_path, caplog):
    """`train.strategy=fsdp` as a user runs it: accelerate launch with tpt's fsdp.yaml over 2 processes
    (gloo on CPU, where accelerate trains FSDP as DDP, and tpt says so); eval then loads M_1. The ddp
    strategy runs the same way in tests/test_vllm_backend.py."""
    import logging

    cfg = compose(
        tiny_overrides(tiny_model_dir)
        + ["pruning=none", "model.train_strategy=fsdp", "model.gpus=2", "data.size=4", "task.train_questions=4"]
    )
    with caplog.at_level(logging.INFO, logger="tpt.training"):
        rows = loop.run_cell(cfg, tmp_path)
    train_dir = tmp_path / "round_1" / "train"
    result = json.loads((train_dir / "result.json").read_text())
    # train.global_batch_size=2: 4 examples make 2 optimizer steps over 2 processes, as on one
    # (tests/test_train.py), where per-device batches would make 1
    assert result["steps"] == 2
    assert json.loads((train_dir / "train_job.json").read_text())["train"]["strategy"] == "fsdp"
    assert "accelerate" in caplog.text and "/accelerate/fsdp.yaml --num_processes 2" in caplog.text
    assert "train.strategy=fsdp on a CPU" in caplog.text and "train as DDP" in caplog.text
    assert (train_dir / "model" / "model.safetensors").is_file() and rows[1]["round"] == 1
