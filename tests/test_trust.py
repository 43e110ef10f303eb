"""What would silently bend numbers at the paper's setting: the pinned revision, the chat template's
date, the cache key, token counts under a pad token that is no EOS, misspelt keys, and the prompts
saved with the samples."""

import json
import shutil

import pytest

from tests.conftest import compose, count_generate_calls, tiny_overrides
from tpt import loop
from tpt.config import ConfigError
from tpt.models import load_tokenizer
from tpt.prompt import CHAT_TEMPLATE_KWARGS, build_messages, encode, render
from tpt.validate import validate

# Llama 3.x's way with dates: today's, unless the caller passes date_string.
DATED_TEMPLATE = (
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = 'unknown' %}{%- endif %}"
    "{%- endif %}<|im_start|>system\nToday Date: {{ date_string }}<|im_end|>\n"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def dated_model_dir(tiny_model_dir, tmp_path):
    """The tiny model with a chat template that stamps a date, as Llama 3.x's does."""
    out = tmp_path / "dated"
    shutil.copytree(tiny_model_dir, out)
    tok = load_tokenizer(str(out))
    tok.chat_template = DATED_TEMPLATE
    tok.save_pretrained(out)
    return out


@pytest.mark.e2e
def test_a_pinned_revision_is_used_by_every_stage_that_loads_the_base_model(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    loads = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        loads.append((str(path), kwargs.get("revision")))
        return original(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    base = str(tiny_model_dir)
    # none: round 1 trains from the base model; gt: a random model is never right, so training is
    # skipped and round 1's eval samples the base model again.
    for pruning in ("none", "gt"):
        loads.clear()
        loop.run_cell(
            compose(tiny_overrides(tiny_model_dir) + ["model.revision=v1", f"pruning={pruning}"]), tmp_path / pruning
        )
        # eval 0, think 1, then eval 1 (gt); none trains round 1 in a process of its own, from the job
        # it is given (tpt/training/distributed.py), which names the same revision
        here = [rev for path, rev in loads if path == base]
        if pruning == "gt":
            assert here == ["v1"] * 3, loads
        else:
            job = json.loads((tmp_path / "none" / "round_1" / "train" / "train_job.json").read_text())
            assert here == ["v1"] * 2 and (job["base_model"], job["revision"]) == (base, "v1"), loads


def test_the_chat_template_date_is_pinned_for_think_train_and_eval(dated_model_dir, tmp_path):
    from tpt.training.sft import build_trainer, to_conversations

    tok = load_tokenizer(str(dated_model_dir))
    conv = build_messages("What is 1 + 1?", "Solve it.")
    [text] = render(tok, [conv])
    assert f"Today Date: {CHAT_TEMPLATE_KWARGS['date_string']}" in text  # not today's date
    cfg = compose(["train.batch_size=2", "train.global_batch_size=2", "train.lr=1e-3"]).train
    trainer = build_trainer(
        str(dated_model_dir),
        to_conversations(
            [{"question": "What is 1 + 1?", "completion": "2\n#### 2"}], lambda q: build_messages(q, "Solve it.")
        ),
        tmp_path,
        cfg,
    )
    prompt_ids = encode(tok, [text])[0]
    assert trainer.train_dataset[0]["input_ids"][: len(prompt_ids)] == prompt_ids  # training sees the same prompt


@pytest.mark.e2e
@pytest.mark.usefixtures("train_in_process")
def test_the_cache_key_follows_the_rendered_prompt(dated_model_dir, tmp_path, monkeypatch):
    """Same messages, other rendered prompt (here: another template date): the cache must not reuse."""
    calls = count_generate_calls(monkeypatch)
    cell = tiny_overrides(dated_model_dir, cache_dir=tmp_path / "cache") + ["pruning=none"]
    loop.run_cell(compose(cell), tmp_path / "a")
    assert calls == ["round 0 eval", "round 1 think", "round 1 eval"]
    calls.clear()
    monkeypatch.setitem(CHAT_TEMPLATE_KWARGS, "date_string", "01 Jan 2030")
    loop.run_cell(compose(cell), tmp_path / "b")
    assert calls[:2] == ["round 0 eval", "round 1 think"]  # M_0's generations were not reused


def test_token_counts_stop_where_the_answer_check_stopped_even_if_pad_is_no_eos(tiny_model_dir, monkeypatch):
    """Gemma pads with id 0 and ends with 1/107: counting up to the first EOS would count the padding."""
    from tpt.backends import Sampling
    from tpt.backends.hf import HFGenerator

    gen = HFGenerator(str(tiny_model_dir), batch_size=4)
    eos = set(gen._eos_ids())
    gen.tokenizer.pad_token = next(
        t for t in gen.tokenizer.all_special_tokens if gen.tokenizer.convert_tokens_to_ids(t) not in eos
    )
    assert gen.tokenizer.pad_token_id not in eos
    stopped = []

    def first_row_only(self, text):  # the answer check ends one row early; the others run to the limit
        if text and not stopped:
            stopped.append(text)
            return True
        return False

    monkeypatch.setattr(Sampling, "finished", first_row_only)
    prompts = encode(gen.tokenizer, render(gen.tokenizer, [build_messages(f"Q{i}?", "Solve.") for i in range(3)]))
    out = gen.generate(prompts, Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=24, seed=0))
    counts = sorted(c.n_tokens for cs in out for c in cs)
    assert len(stopped) == 1 and counts[0] <= 3 and counts[-1] == 24, counts  # not 24 for the stopped row


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+think.temprature=0.1",
            "think.temprature is not a config key (nothing reads it); did you mean think.temperature?",
        ),
        ("+task.few_shots=3", "task.few_shots is not a config key"),
        ("+seed=3", "seed is not a config key"),
    ],
)
def test_a_misspelt_new_key_is_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")):
        validate(compose([override]))


def test_open_keys_stay_open():
    validate(compose(["cluster=slurm", "+cluster.sbatch.constraint=h100"]))  # any sbatch flag


@pytest.mark.e2e
@pytest.mark.usefixtures("train_in_process")
def test_each_stage_saves_the_prompts_it_sent(tiny_model_dir, tmp_path):
    loop.run_cell(compose(tiny_overrides(tiny_model_dir) + ["pruning=none"]), tmp_path)
    tok = load_tokenizer(str(tiny_model_dir))
    for stage, n_questions in (("round_0/eval", 3), ("round_1/think", 4), ("round_1/eval", 3)):
        prompts = [json.loads(l) for l in (tmp_path / stage / "prompts.jsonl").open()]
        samples = [json.loads(l) for l in (tmp_path / stage / "samples.jsonl").open()]
        assert len(prompts) == n_questions and {p["qid"] for p in prompts} == {s["qid"] for s in samples}
        by_qid = {s["qid"]: s["question"] for s in samples}
        for p in prompts:
            assert by_qid[p["qid"]] in p["prompt"]
            assert p["prompt"].endswith("<|im_start|>assistant\n")  # the template, as rendered for the model
            assert len(tok(p["prompt"], add_special_tokens=False)["input_ids"]) > 10


@pytest.mark.e2e
@pytest.mark.usefixtures("train_in_process")
def test_metrics_carry_standard_errors_and_correct_at_k_counts(tiny_model_dir, tmp_path, capsys):
    rows = loop.run_cell(compose(tiny_overrides(tiny_model_dir) + ["pruning=none"]), tmp_path)
    for row in rows:
        for key in ("pass@1", "pass@2", "correct@1", "correct@2", "lenient_pass@1"):
            assert f"{key}_se" in row and row[f"{key}_se"] >= 0
        assert row["questions"] == 3 and 0 <= row["correct@2"] <= 3
    assert f"{rows[0]['pass@1']:.3f} ± {rows[0]['pass@1_se']:.3f}" in capsys.readouterr().out
