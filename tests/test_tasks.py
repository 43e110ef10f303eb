import json

import pytest

from tests.conftest import compose
from tpt.tasks import DataError, load_task
from tpt.tasks.base import strip_calculator_annotations
from tpt.tasks.gsm8k import read_jsonl


def test_arith_problems_are_gsm8k_format_and_deterministic():
    cfg = compose().task
    a, b = load_task(cfg), load_task(cfg)
    assert [p.question for p in a.eval] == [p.question for p in b.eval]
    assert len(a.eval) == cfg.eval_questions and len(a.few_shot) == cfg.few_shot
    for p in a.train[:50]:
        assert p.solution.splitlines()[-1] == f"#### {p.answer}"
    assert not {p.question for p in a.few_shot} & {p.question for p in a.train}
    assert not {p.question for p in a.eval} & {p.question for p in a.train}


def test_arith_difficulty_is_tunable():
    easy = load_task(compose(["task.arith.min_steps=1", "task.arith.max_steps=1"]).task)
    hard = load_task(compose(["task.arith.min_steps=4", "task.arith.max_steps=4"]).task)
    assert all(len(p.solution.splitlines()) == 3 for p in easy.train)  # start, one step, answer
    assert all(len(p.solution.splitlines()) == 6 for p in hard.train)


def test_minicode_problems_are_deterministic_distinct_and_solved_by_their_references():
    from tpt.verify.code import CodeVerifier

    cfg = compose(["task=minicode"])
    data = load_task(cfg.task)
    assert (len(data.train), len(data.eval), len(data.few_shot)) == (54, 32, 2)
    again = load_task(compose(["task=minicode"]).task)
    assert [(p.question, p.tests) for p in data.eval] == [(p.question, p.tests) for p in again.eval]
    train = {p.question for p in data.train + data.few_shot}
    assert len(train) == 56 and not train & {p.question for p in data.eval}  # no test statement is a train one
    problems = data.train + data.eval + data.few_shot
    verdicts = CodeVerifier(cfg.task.code).verify([(p, p.solution) for p in problems])
    assert all(v["correct"] for v in verdicts)  # in the real sandbox
    wrong = CodeVerifier(cfg.task.code).verify([(p, "```python\nprint(input())\n```") for p in data.eval])
    assert not any(v["correct"] for v in wrong)  # echoing the input never passes
    with pytest.raises(DataError, match="exceeds the 88 distinct problems"):
        load_task(compose(["task=minicode", "task.minicode.n_train=80"]).task)


def test_gsm8k_local_folder(gsm8k_dir):
    cfg = compose(["task=gsm8k", f"task.path={gsm8k_dir}"]).task
    data = load_task(cfg)
    assert len(data.eval) == 500  # the paper's eval subset
    assert len(data.train) == 7473 - cfg.few_shot
    again = load_task(cfg)
    assert [p.id for p in data.eval] == [p.id for p in again.eval]  # fixed by seed
    other = load_task(compose(["task=gsm8k", f"task.path={gsm8k_dir}", "task.eval_seed=5"]).task)
    assert [p.id for p in data.eval] != [p.id for p in other.eval]
    assert data.eval[0].answer.lstrip("-").replace(".", "").isdigit()


def test_gsm8k_from_the_hub_goes_through_datasets(gsm8k_dir, monkeypatch):
    """The hub path calls datasets.load_dataset('openai/gsm8k', 'main'); served here from local files."""
    import datasets

    calls = []
    real_load_dataset = datasets.load_dataset

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return real_load_dataset("json", data_files=str(gsm8k_dir / f"{split}.jsonl"), split="train")

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task(compose(["task=gsm8k"]).task)
    assert calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert len(data.eval) == 500


def test_unreachable_hub_names_the_dataset(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="openai/gsm8k.*task.path"):
        load_task(compose(["task=gsm8k"]).task)


def write_split(folder, rows_train, rows_test):
    folder.mkdir(exist_ok=True)
    for name, rows in (("train", rows_train), ("test", rows_test)):
        (folder / f"{name}.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))


GOOD = {"question": "1+1?", "answer": "1+1=2\n#### 2"}


def test_malformed_jsonl_names_file_and_line(tmp_path):
    write_split(tmp_path / "d", [GOOD, GOOD, "{not json\n"], [GOOD])
    with pytest.raises(DataError, match=r"train\.jsonl:3: not valid JSON"):
        load_task(compose(["task=gsm8k", f"task.path={tmp_path / 'd'}"]).task)


def test_gold_answer_without_marker_is_rejected(tmp_path):
    write_split(tmp_path / "d", [GOOD], [GOOD, {"question": "q", "answer": "it is 4"}])
    with pytest.raises(DataError, match=r"test\.jsonl:2: field 'answer' holds no answer under task.answer=hash"):
        read_jsonl(tmp_path / "d" / "test.jsonl", "test")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        load_task(compose(["task=gsm8k", f"task.path={tmp_path / 'nope'}"]).task)


def test_calculator_annotations_are_stripped():
    assert strip_calculator_annotations("48/2 = <<48/2=24>>24 clips") == "48/2 = 24 clips"
