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
    rows = [{"qid": "a", "correct": True, "lenient_correct": True, "pred": "1", "n_tokens": n, "completion": "x"}
            for n in (10, 64, 64, 3)]
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
    config = Gemma2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                          sliding_window=16, attn_logit_softcapping=softcap, final_logit_softcapping=None)
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


def test_models_without_a_soft_cap_keep_the_default_attention():
    from transformers import LlamaConfig

    from tpt.models import attention_for

    assert attention_for(LlamaConfig(), "cuda") is None
