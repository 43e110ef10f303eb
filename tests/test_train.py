import pytest
import torch
from safetensors.torch import load_file

from tpt.lineage import base_model
from tpt.prompt import build_messages
from tpt.training.sft import build_trainer, sft, to_conversations

RECORDS = [{"question": f"What is {i} + 1?", "completion": f"{i} + 1 = {i + 1}.\n#### {i + 1}"} for i in range(4)]


def prompt(q):
    return build_messages(q, "Solve it.")


def test_records_become_prompt_completion_conversations():
    ex = to_conversations(RECORDS, prompt)[0]
    assert ex["prompt"][-1] == {"role": "user", "content": "Solve it.\n\nProblem: What is 0 + 1?"}
    assert ex["completion"] == [{"role": "assistant", "content": "0 + 1 = 1.\n#### 1"}]


def test_loss_is_on_the_completion_only(tiny_model_dir, tmp_path, train_cfg):
    trainer = build_trainer(str(tiny_model_dir), to_conversations(RECORDS, prompt), tmp_path, train_cfg)
    row = trainer.train_dataset[0]
    trained = [label != -100 for label in row["labels"]]
    assert 0 < sum(trained) < len(trained)  # prompt tokens masked out (-100), completion tokens trained
    assert not trained[0] and trained[-1]
    completion = trainer.processing_class.decode([t for t, ok in zip(row["input_ids"], trained) if ok])
    assert completion.startswith("0 + 1 = 1.\n#### 1")


def test_sft_updates_and_saves_a_loadable_model(tiny_model_dir, tmp_path, train_cfg):
    result = sft(
        base_model("tiny", str(tiny_model_dir), None), to_conversations(RECORDS, prompt), tmp_path / "m", train_cfg
    )
    assert result["examples"] == 4 and result["steps"] == 2
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(tmp_path / "m" / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no weight changed"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert AutoTokenizer.from_pretrained(tmp_path / "m").chat_template


def test_warmup_rounds_down_so_short_runs_still_train(tiny_model_dir, tmp_path, train_cfg):
    from tpt.training import optimizer_steps

    assert optimizer_steps(4, train_cfg) == 2 and optimizer_steps(5, train_cfg) == 3
    trainer = build_trainer(str(tiny_model_dir), to_conversations(RECORDS, prompt), tmp_path, train_cfg)
    assert trainer.args.get_warmup_steps(2) == 0  # 10% of 2 steps: no warmup step at lr 0


@pytest.mark.e2e
def test_single_trains_in_a_process_of_its_own_and_leaves_no_memory_behind(tmp_path):
    """The embedded 135M model's fp32 weights, gradients and AdamW states (~2 GB) live in a spawned
    process: this process's peak memory does not grow by them, the child's does, and the saved model
    loads for the next stage."""
    import resource

    from tests.conftest import compose
    from tpt.models import ModelRef, load_causal_lm, materialize_embedded
    from tpt.prompt import build_messages
    from tpt.training.sft import sft, to_conversations

    base = str(materialize_embedded("smollm2-135m-instruct"))
    examples = to_conversations(
        [{"question": "1 + 1?", "completion": "#### 2"}] * 2, lambda q: build_messages(q, "Solve.")
    )
    cfg = compose(["train.batch_size=2", "train.global_batch_size=2", "train.lr=1e-5", "train.bf16=false"]).train
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result = sft(ModelRef(base, None, lambda: "smollm"), examples, tmp_path / "model", cfg)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert result["steps"] == 1 and grew < 300_000 and child > 1_200_000, (grew, child)
    assert load_causal_lm(str(tmp_path / "model"), dtype="float32") is not None


def test_training_loads_the_model_where_it_is_for_the_trainer_or_fsdp_to_place(
    tiny_model_dir, monkeypatch, train_cfg, tmp_path
):
    """On a GPU, moving the whole fp32 model onto every FSDP rank's device before sharding needs the whole
    model on each GPU (or fails on ranks that load on the meta device): training leaves placement to the
    Trainer and accelerate."""
    from transformers import PreTrainedModel

    import tpt.models as models

    moved = []
    monkeypatch.setattr(models, "device", lambda: "cuda")  # as on a GPU machine
    monkeypatch.setattr(models, "torch_dtype", lambda name, on: torch.float32)
    monkeypatch.setattr(PreTrainedModel, "to", lambda self, *a, **k: moved.append(a) or self)
    models.load_causal_lm(str(tiny_model_dir), dtype="float32", place=False)
    assert ("cuda",) not in moved
    models.load_causal_lm(str(tiny_model_dir), dtype="float32")  # generation (backend=hf) places it
    assert ("cuda",) in moved


def test_fsdp_reduces_gradients_in_fp32_like_the_other_strategies(monkeypatch):
    """One mixed-precision policy for all strategies: under accelerate's FSDP (its environment, as
    `accelerate launch` with fsdp.yaml sets it) gradients are reduced in fp32, not accelerate's bf16."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    import tpt.training.sft as sft_module
    from tests.conftest import compose
    from tpt.training.strategies import strategy_of

    cfg = compose(["train.bf16=true", "model.train_strategy=fsdp", "model.gpus=2"]).train
    monkeypatch.setattr(sft_module.torch.cuda, "is_available", lambda: True)  # bf16 as on GPUs

    def fsdp_plugin_args(cfg):
        return strategy_of(cfg).plugin_args(cfg, sft_module.uses_bf16(cfg))

    assert fsdp_plugin_args(cfg) is None  # not under accelerate's FSDP: nothing to set
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    plugin = FullyShardedDataParallelPlugin(**fsdp_plugin_args(cfg))
    policy = plugin.mixed_precision_policy
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    plugin.set_mixed_precision("bf16")  # what accelerate's state does with `mixed_precision: bf16`
    assert plugin.mixed_precision_policy.reduce_dtype == torch.float32
    default = FullyShardedDataParallelPlugin(fsdp_version=2)
    default.set_mixed_precision("bf16")
    assert default.mixed_precision_policy.reduce_dtype == torch.bfloat16  # accelerate's own: what tpt replaces
