"""The paper's setting, checked where it can be without a GPU: evaluation as the paper reports each
table, samples cut by the token limit counted, soft positives that survive a timeout, and Gemma-2
trained with the attention it is sampled with."""

import pytest
import torch

from tests.conftest import compose
from tpt.experiments import cells as experiment_cells
from tpt.paper import PASS_K, TABLES
from tpt.stages.eval import metrics
from tpt.summary import format_summary, kept_data

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_row_evaluates_the_pass_at_k_its_table_reports(table):
    """Table 8 reports Pass@20: an eval of Pass@50 leaves nothing to compare."""
    for overrides in experiment_cells(table):
        cfg = compose(overrides)
        k = PASS_K.get(cfg.task.name)
        if k is not None:
            assert k in cfg.eval.k and cfg.eval.n >= k, (table, overrides, list(cfg.eval.k))


def test_leetcode_has_correct_at_100_and_codecontests_the_papers_1000_examples():
    leetcode = compose(["task=leetcode"])
    assert (leetcode.eval.n, list(leetcode.eval.k)) == (100, [1, 20, 100])
    assert compose(["task=codecontests"]).data.size == 1000  # section 3.3
    assert compose(["task=codecontests", "data_size=4k"]).data.size == 4000  # a row's size still wins


def test_samples_at_the_token_limit_are_counted_and_shown():
    rows = [
        {"qid": "a", "correct": True, "lenient_correct": True, "pred": "1", "n_tokens": n, "completion": "x"}
        for n in (10, 64, 64, 3)
    ]
    m = metrics(rows, [1], "math", max_new_tokens=64)
    assert m["cut_rate"] == 0.5
    table = format_summary([{**m, "round": 0}], [1])
    assert "| cut |" in table and "| 0.50 |" in table


def test_a_data_size_not_reached_says_so():
    assert kept_data({"data_size": 412, "data_requested": 2000}) == "2000 → 412"
    assert kept_data({"data_size": 24, "data_requested": 24}) == "24"


def tiny_gemma2(path, softcap: float):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        sliding_window=16,
        attn_logit_softcapping=softcap,
        final_logit_softcapping=None,
    )
    model = Gemma2ForCausalLM(config)
    with torch.no_grad():  # large attention logits, so that a cap of `softcap` bites
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(20)
            layer.self_attn.k_proj.weight.mul_(20)
    model.save_pretrained(path)
    return path


def test_gemma2_loads_with_attention_that_applies_its_soft_cap(tmp_path):
    from transformers import AutoModelForCausalLM

    from tpt.models import load_causal_lm

    path = tiny_gemma2(tmp_path / "gemma2", softcap=2.0)
    ids = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(1))
    logits = {}
    for impl in ("eager", "sdpa"):
        ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=impl)
        logits[impl] = ref(ids).logits
    assert not torch.allclose(logits["eager"], logits["sdpa"], atol=1e-3)  # SDPA skips the cap
    ours = load_causal_lm(str(path), dtype="float32")
    assert ours.config._attn_implementation == "eager"
    assert torch.allclose(ours(ids).logits, logits["eager"], atol=1e-5)


def test_on_a_gpu_only_a_soft_cap_changes_the_default_attention_and_a_cpu_computes_eager():
    from transformers import Gemma2Config, LlamaConfig

    from tpt.models import attention_for

    assert attention_for(LlamaConfig(), "cuda") is None
    assert attention_for(Gemma2Config(), "cuda") in ("eager", "flash_attention_2")  # both apply the cap
    assert attention_for(LlamaConfig(), "cpu") == attention_for(Gemma2Config(), "cpu") == "eager"


@pytest.mark.parametrize("gpus, nodes, strategy", [(1, 1, "single"), (4, 1, "fsdp"), (8, 2, "fsdp"), (2, 1, "ddp")])
def test_the_same_data_makes_the_same_optimizer_steps_on_any_number_of_gpus(gpus, nodes, strategy):
    from tpt.training import batch_shape, optimizer_steps

    cfg = compose([f"model.gpus={gpus}", f"model.nodes={nodes}", f"model.train_strategy={strategy}"]).train
    micro, accum = batch_shape(cfg)
    assert micro * accum * gpus * nodes == cfg.global_batch_size == 16 and micro <= cfg.batch_size
    assert optimizer_steps(2000, cfg) == 125  # 2,000 examples / 16


def test_every_paper_row_trains_with_one_global_batch():
    from tpt.validate import validate

    sizes = set()
    for table in TABLES:
        for overrides in experiment_cells(table):
            cfg = compose(overrides)
            validate(cfg)  # the global batch divides over every preset's GPUs
            sizes.add(cfg.train.global_batch_size)
    assert sizes == {16}


def test_a_global_batch_that_does_not_divide_over_the_gpus_is_refused():
    from tpt.config import ConfigError
    from tpt.validate import validate

    with pytest.raises(ConfigError, match="train.global_batch_size must be a multiple of the 6 training processes"):
        validate(compose(["model.gpus=6", "model.train_strategy=ddp"]))


def test_examples_longer_than_the_limit_are_dropped_whole_and_counted(tokenizer_dir):
    from tpt.models import ModelRef, load_tokenizer
    from tpt.prompt import build_messages
    from tpt.training.sft import example_lengths, fit_length, to_conversations

    records = [
        {"question": "1 + 1?", "completion": "#### 2"},
        {"question": "2 + 2?", "completion": "4 " * 200 + "#### 4"},
    ]
    examples = to_conversations(records, lambda q: build_messages(q, "Solve."))
    short, long = example_lengths(load_tokenizer(str(tokenizer_dir)), examples)
    assert long > short + 200
    base = ModelRef(str(tokenizer_dir), None, lambda: "m")
    kept, cfg, dropped = fit_length(examples, base, compose([]).train)  # null: the longest, none cut
    assert (len(kept), cfg.max_length, dropped) == (2, long, 0)
    kept, cfg, dropped = fit_length(examples, base, compose(["train.max_length=100"]).train)
    assert (len(kept), cfg.max_length, dropped) == (1, 100, 1) and kept[0] is examples[0]


def test_a_bf16_base_is_checkpointed_in_bf16_and_loads(tiny_model_dir, tmp_path):
    import json
    import shutil

    from safetensors.torch import load_file

    from tpt.models import ModelRef, cast_checkpoint, load_causal_lm
    from tpt.prompt import build_messages
    from tpt.training.sft import sft, to_conversations

    base = tmp_path / "bf16-base"
    shutil.copytree(tiny_model_dir, base)
    cast_checkpoint(base, torch.bfloat16)  # a base model published in bf16, as Gemma-2 and Llama-3 are
    examples = to_conversations(
        [{"question": "1 + 1?", "completion": "#### 2"}] * 2, lambda q: build_messages(q, "Solve.")
    )
    cfg = compose(["train.batch_size=2", "train.global_batch_size=2", "train.lr=1e-3", "train.bf16=false"]).train
    sft(ModelRef(str(base), None, lambda: "b"), examples, tmp_path / "m1", cfg)
    weights = load_file(tmp_path / "m1" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "m1" / "config.json").read_text())["dtype"] == "bfloat16"
    model = load_causal_lm(str(tmp_path / "m1"), dtype="float32")
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


@pytest.mark.e2e
def test_keep_last_leaves_only_the_last_checkpoint(tiny_model_dir, tmp_path):
    from tests.conftest import tiny_overrides
    from tpt import loop

    cfg = compose(tiny_overrides(tiny_model_dir) + ["pruning=none", "rounds=2", "train.keep=last", "data.size=2"])
    rows = loop.run_cell(cfg, tmp_path)
    assert not (tmp_path / "round_1" / "train" / "model").exists()
    assert (tmp_path / "round_1" / "train" / "result.json").is_file()
    assert (tmp_path / "round_2" / "train" / "model" / "model.safetensors").is_file()
    assert loop.run_cell(cfg, tmp_path) == rows  # the same command again: the stage without its weights is whole


def test_the_paper_report_says_where_the_paper_disagrees_with_itself(tmp_path):
    from tpt.paper_report import compare_table, to_markdown

    def report(table_id):  # no runs yet: the paper's side and the notes
        return to_markdown(TABLES[table_id], *compare_table(TABLES[table_id], [], tmp_path))

    text = report("table4")
    assert "Gemma-2-9B baseline in Table 4 (Pass@1 5.10" in text and "in Table 7 (Pass@1 5.20" in text
    assert "1k self (2B) on the base model in Table 9 (Pass@1 0.92, Pass@50 4.28)" in text
    assert "9.20 (13/140 = 9.29)" in text  # truncated, not rounded
    assert "Gemma-2-9B baseline repeats Gemma-2-2B baseline's numbers" in report("table8")
    assert "prints one experiment twice" not in report("table3")


# --- data sizes: reached, or said ----------------------------------------------------------------------


@pytest.mark.parametrize("miniature", [[], ["miniature=true"]])
def test_the_readme_ablation_gives_four_different_training_set_sizes(miniature):
    """`python launch.py -m data_size=1k,2k,4k,6k pruning=gt,none` on the embedded default, with or
    without miniature=true: the paper's sizes scaled to the CPU task, each reachable, all different."""
    from tpt.preflight import check_reachable
    from tpt.sources import source_of
    from tpt.tasks import load_task

    sizes = []
    for size in ("1k", "2k", "4k", "6k"):
        cfg = compose([f"data_size={size}", "pruning=gt", *miniature])
        check_reachable(cfg, len(load_task(cfg.task).train))
        sizes.append(source_of(cfg).sizes(cfg)[0])
        assert (cfg.miniature, cfg.task.train_questions, cfg.data.size) == (True, 96, int(size[0]) * 1000)
    assert sizes == [12, 24, 48, 72]


def test_a_size_the_train_questions_cannot_give_is_refused_naming_the_fix():
    from tpt.config import ConfigError
    from tpt.preflight import prepare

    with pytest.raises(ConfigError, match="has 48 train questions.*add miniature=true"):
        prepare(compose(["data.size=1000", "backend=hf"]))  # a number, not the paper's data_size group


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_design_cards_sweep_runs_on_the_embedded_default(tiny_model_dir, tmp_path):
    """The command tpt is built around, `python launch.py -m data_size=1k,2k,4k,6k pruning=gt,none`, as
    a user on a laptop types it (made CI-sized: the tiny model, one round, 8 eval questions): 8 cells
    whose sizes are the paper's scaled to the bundled problems, and the report's data-size plot drawn
    at the sizes trained on."""
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tpt.report import data_size_series, load_cells, plot, table

    small = [
        f"model.id={tiny_model_dir}",
        "backend=hf",
        "rounds=1",
        "task.eval_questions=8",
        "eval.n=2",
        "eval.k=[1,2]",
        "think.n=2",
        "think.max_new_tokens=8",
        "eval.max_new_tokens=8",
        "data.shortfall=warn",
        "train.batch_size=8",
        "cache=off",
        f"hydra.sweep.dir={tmp_path}",
    ]
    done = subprocess.run(
        [sys.executable, "launch.py", "-m", "data_size=1k,2k,4k,6k", "pruning=gt,none", *small],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the paper's 6000 examples on the bundled arith problems, x 0.012" in done.stdout + done.stderr
    cells = load_cells(tmp_path)
    assert len(cells) == 8
    rows = table(cells, tmp_path)
    trained = {(r["pruning"], r["data_size"]): r["trained"] for r in rows if r["round"] == 1}
    # no pruning keeps every sample, so each size is reached: the paper's 1k-6k x 0.012 of 96 questions
    assert [trained[("none", n)] for n in (1000, 2000, 4000, 6000)] == [12, 24, 48, 72]
    assert all(trained[("gt", n)] <= n * 0.012 for n in (1000, 2000, 4000, 6000))  # what the tiny model solved
    series = data_size_series(rows)
    model = rows[0]["model"]
    assert [p[0] for p in series[(model, "none")]] == [12, 24, 48, 72]  # the x axis: examples trained on
    assert all(p[2] > 0 or p[1] in (0.0, 1.0) for p in series[(model, "none")])  # with its standard error
    assert (tmp_path / "pass_by_data_size.png") in plot(rows, tmp_path)


def fake_verdicts_correct_only_when_resampled(cell):
    """The verifier boundary: round 1's first think batch is all wrong, every resampled one right."""
    real = cell.verifier.verify

    def verify(pairs, desc="verify", reused=None):
        verdicts = real(pairs, desc, reused)
        return [{**v, "correct": "resample" in desc} for v in verdicts]

    cell.verifier.verify = verify


@pytest.mark.e2e
@pytest.mark.parametrize("shortfall", ["resample", "warn", "fail"])
def test_a_short_data_size_is_resampled_warned_or_refused(tiny_model_dir, tmp_path, shortfall, monkeypatch):
    import json

    from tests.conftest import tiny_overrides
    from tpt import loop
    from tpt.cell import Cell
    from tpt.config import ConfigError

    real_open = Cell.open.__func__

    def open_with_fake_verdicts(cls, *args, **kwargs):
        cell = real_open(cls, *args, **kwargs)
        fake_verdicts_correct_only_when_resampled(cell)
        return cell

    monkeypatch.setattr(Cell, "open", classmethod(open_with_fake_verdicts))
    cfg = compose(tiny_overrides(tiny_model_dir) + [f"data.shortfall={shortfall}", "data.size=4", "pruning=gt"])
    if shortfall == "fail":
        with pytest.raises(ConfigError, match="round 1 prune: 0 examples available.*data.shortfall=resample"):
            loop.run_cell(cfg, tmp_path)
        return
    rows = loop.run_cell(cfg, tmp_path)
    think = [json.loads(line) for line in (tmp_path / "round_1" / "think" / "samples.jsonl").read_text().splitlines()]
    if shortfall == "resample":  # one more batch of think.n=2 for each of the 4 questions, then all 4 reached
        assert len(think) == 16 and sorted({s["sample"] for s in think}) == [0, 1, 2, 3]
        assert rows[1]["think_batches"] == 2 and rows[1]["data_size"] == rows[1]["data_requested"] == 4
    else:
        assert len(think) == 8 and rows[1]["data_size"] == 0 and rows[1]["data_requested"] == 4
