"""The whole loop on the tiny model: stages, files, resume, config pinning."""

import json

import pytest

from tests.conftest import compose, count_generate_calls, tiny_overrides
from tpt import loop
from tpt.config import ConfigError
from tpt.stages import prune, train

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


def run(model_dir, run_dir, *extra):
    return loop.run_cell(compose(tiny_overrides(model_dir) + list(extra)), run_dir)


def test_two_rounds_write_every_stage(tiny_model_dir, tmp_path, capsys):
    rows = run(tiny_model_dir, tmp_path, "rounds=2", "pruning=none")
    assert [r["round"] for r in rows] == [0, 1, 2]
    for i in (1, 2):
        for stage in ("think", "prune", "train", "eval"):
            assert (tmp_path / f"round_{i}" / stage / "DONE.json").is_file()
        assert (tmp_path / f"round_{i}" / "train" / "model" / "model.safetensors").is_file()
        think = [json.loads(l) for l in (tmp_path / f"round_{i}" / "think" / "samples.jsonl").open()]
        assert len(think) == 4 * 2  # train questions x think.n
    evals = [json.loads(l) for l in (tmp_path / "round_2" / "eval" / "samples.jsonl").open()]
    assert len(evals) == 3 * 2 and {"completion", "correct", "pred", "lenient_correct"} <= set(evals[0])
    stats = json.loads((tmp_path / "round_1" / "prune" / "stats.json").read_text())
    assert stats["size"] == 3 and stats["samples"] == 8
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
    assert [l["round"] for l in lines] == [0, 1, 2] and lines[1]["data_size"] == 3
    assert "pass@2" in lines[0] and "correct@2" in lines[0]
    out = capsys.readouterr().out
    assert "Pass@1 | Pass@2 | Correct@2" in out and (tmp_path / "summary.md").is_file()


@pytest.mark.e2e
def test_rerun_after_think_resumes_without_redoing_it(tiny_model_dir, tmp_path, monkeypatch):
    def interrupted(cell, i, out):
        raise KeyboardInterrupt("stopped after think")

    with monkeypatch.context() as m:
        m.setattr(prune, "run", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(tiny_model_dir, tmp_path, "pruning=none")
    think_file = tmp_path / "round_1" / "think" / "samples.jsonl"
    assert think_file.is_file() and not (tmp_path / "round_1" / "prune").exists()
    before = (think_file.stat().st_mtime_ns, think_file.read_bytes())

    calls = count_generate_calls(monkeypatch)
    run(tiny_model_dir, tmp_path, "pruning=none")
    assert calls == ["round 1 eval"]  # round 0 eval and round 1 think were not redone
    assert (think_file.stat().st_mtime_ns, think_file.read_bytes()) == before
    assert (tmp_path / "round_1" / "eval" / "DONE.json").is_file()


@pytest.mark.e2e
def test_interrupted_stage_leaves_no_published_output(tiny_model_dir, tmp_path, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("died while training")

    monkeypatch.setattr(train, "sft", crash)
    with pytest.raises(RuntimeError):
        run(tiny_model_dir, tmp_path, "pruning=none")
    assert not (tmp_path / "round_1" / "train").exists()  # only the .partial folder, restarted next time
    monkeypatch.undo()
    calls = count_generate_calls(monkeypatch)
    run(tiny_model_dir, tmp_path, "pruning=none")
    assert calls == ["round 1 eval"]
    assert not list((tmp_path / "round_1").glob(".train.partial*"))


@pytest.mark.e2e
def test_more_rounds_extend_a_finished_run(tiny_model_dir, tmp_path, monkeypatch):
    run(tiny_model_dir, tmp_path, "pruning=none")
    calls = count_generate_calls(monkeypatch)
    rows = run(tiny_model_dir, tmp_path, "pruning=none", "rounds=2")
    assert calls == ["round 2 think", "round 2 eval"]
    assert [r["round"] for r in rows] == [0, 1, 2]


@pytest.mark.e2e
def test_a_different_config_cannot_reuse_the_run_dir(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path, "pruning=none")
    with pytest.raises(ConfigError, match="data.size"):
        run(tiny_model_dir, tmp_path, "pruning=none", "data.size=2")


@pytest.mark.e2e
def test_no_correct_sample_keeps_the_previous_model(tiny_model_dir, tmp_path):
    rows = run(tiny_model_dir, tmp_path, "pruning=gt")  # a random model is never right
    assert rows[1]["data_size"] == 0
    result = json.loads((tmp_path / "round_1" / "train" / "result.json").read_text())
    assert result["skipped"] is True


@pytest.mark.e2e
def test_accumulate_keeps_earlier_rounds_data(tiny_model_dir, tmp_path):
    rows = run(tiny_model_dir, tmp_path, "pruning=none", "rounds=2", "data.accumulate=true")
    assert rows[1]["data_size"] == 3 and rows[2]["data_size"] == 6


@pytest.mark.e2e
def test_gsm8k_cell_on_the_real_data(tiny_model_dir, tmp_path, gsm8k_dir):
    rows = run(
        tiny_model_dir,
        tmp_path,
        "task=gsm8k",
        f"task.path={gsm8k_dir}",
        "task.eval_questions=3",
        "task.train_questions=4",
        "rounds=1",
        "think.n=2",
        "eval.n=2",
        "eval.k=[1,2]",
        "pruning=none",
        "data.size=3",
    )
    assert rows[1]["questions"] == 3
