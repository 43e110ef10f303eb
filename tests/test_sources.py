"""Where the training data comes from: self, a teacher, the dataset's human solutions, or a mix."""

import json

import pytest

from tests.conftest import compose, count_generate_calls, tiny_overrides
from tpt import loop
from tpt.config import ConfigError
from tpt.validate import validate

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


def records(run_dir, i=1):
    return [json.loads(l) for l in (run_dir / f"round_{i}" / "prune" / "train.jsonl").open()]


@pytest.mark.e2e
def test_human_solutions_need_no_generation(tiny_model_dir, tmp_path, gsm8k_dir, monkeypatch):
    calls = count_generate_calls(monkeypatch)
    gsm8k = [
        "task=gsm8k",
        f"task.path={gsm8k_dir}",
        "task.few_shot=0",
        "rounds=1",
        "think.n=2",
        "eval.n=2",
        "eval.k=[1,2]",
    ]
    rows = loop.run_cell(compose(tiny_overrides(tiny_model_dir) + gsm8k + ["source=human"]), tmp_path / "strip")
    assert "round 1 think" not in calls
    kept = records(tmp_path / "strip")
    assert rows[1]["data_size"] == 3 and all(r["origin"] == "human" for r in kept)
    assert all("<<" not in r["completion"] and r["completion"].splitlines()[-1].startswith("####") for r in kept)
    loop.run_cell(
        compose(tiny_overrides(tiny_model_dir) + gsm8k + ["source=human", "source.keep_annotations=true"]),
        tmp_path / "keep",
    )
    assert any("<<" in r["completion"] for r in records(tmp_path / "keep"))


@pytest.mark.e2e
def test_distill_thinks_with_the_teacher(tiny_model_dir, tmp_path, monkeypatch):
    calls = count_generate_calls(monkeypatch)
    loop.run_cell(
        compose(
            tiny_overrides(tiny_model_dir) + ["source=distill", f"source.teacher={tiny_model_dir}", "pruning=none"]
        ),
        tmp_path,
    )
    assert "round 1 think (teacher)" in calls
    assert all(r["origin"] == "teacher" for r in records(tmp_path))


@pytest.mark.e2e
def test_mixed_takes_human_and_self_examples_on_distinct_questions(tiny_model_dir, tmp_path):
    loop.run_cell(
        compose(tiny_overrides(tiny_model_dir) + ["source=mixed", "source.human_size=1", "pruning=none"]), tmp_path
    )
    kept = records(tmp_path)
    assert sorted(r["origin"] for r in kept) == ["human", "self", "self"]
    assert len({r["qid"] for r in kept}) == 3
    stats = json.loads((tmp_path / "round_1" / "prune" / "stats.json").read_text())
    assert stats["human_size"] == 1 and stats["self_size"] == 2 and stats["size"] == 3


def test_impossible_sources_are_rejected():
    with pytest.raises(ConfigError, match="source.teacher is required with source=distill"):
        validate(compose(["source=distill"]))
    with pytest.raises(ConfigError, match="source.human_size"):
        validate(compose(["source=mixed", "data.size=100", "source.human_size=100"]))
    validate(compose(["source=mixed", "data.size=1000", "source.human_size=500"]))


def test_each_source_owns_its_behaviour():
    from tpt.sources import SOURCES, SourceError

    cfg = compose(["source=mixed", "source.human_size=500", "data.size=2000"])
    assert SOURCES["mixed"].sizes(cfg) == (1500, 500) and SOURCES["self"].sizes(cfg) == (2000, 0)
    assert [SOURCES[s].thinker for s in ("self", "distill", "human", "mixed")] == ["self", "teacher", None, "self"]
    with pytest.raises(SourceError, match="source.teacher is required"):
        SOURCES["distill"].check(compose(["source=distill"]))
    mini = compose(["row=t2_2b_distill_1k", "miniature=true"])  # the row's teacher is Gemma-2-9B
    assert mini.source.teacher == mini.model.id == "embedded:smollm2-135m-instruct"
    assert SOURCES["self"].miniature_settings() == []


def test_no_module_but_tpt_sources_asks_which_source_a_cell_has():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "tpt"
    asks = re.compile(r"source\.kind\s*(==|!=|\bin\b|\bnot in\b)")
    found = [
        f"{p.relative_to(root)}:{n}"
        for p in root.rglob("*.py")
        if p.name != "sources.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if asks.search(line)
    ]
    assert found == []
