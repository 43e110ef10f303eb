"""Code task loaders (CodeContests format from jsonl, parquet and through `datasets`; the LeetCode
format), their errors, and a whole round on a code task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose, tiny_overrides
from tpt import loop
from tpt.config import ConfigError
from tpt.tasks import DataError, load_task, task_kind
from tpt.validate import validate
from tpt.verify.code import CodeVerifier

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


DATA = Path(__file__).parent / "data" / "code"


def io_block(pairs):
    return {"input": [i for i, _ in pairs], "output": [o for _, o in pairs]}


def cc_row(name, description, public, private=(), generated=(), solutions=(), seconds=2, nanos=0, mem=256 << 20):
    """A row shaped like deepmind/code_contests (the fields tpt reads, plus some it ignores)."""
    return {
        "name": name,
        "description": description,
        "source": 2,
        "difficulty": 7,
        "public_tests": io_block(public),
        "private_tests": io_block(private),
        "generated_tests": io_block(generated),
        "solutions": {"language": [l for l, _ in solutions], "solution": [s for _, s in solutions]},
        "incorrect_solutions": {"language": [], "solution": []},
        "time_limit": {"seconds": seconds, "nanos": nanos},
        "memory_limit_bytes": mem,
        "input_file": "",
        "output_file": "",
        "cf_tags": ["math"],
    }


ADD = "a, b = map(int, input().split())\nprint(a + b)"
TRAIN = [
    cc_row(
        "1_A. Add",
        "Print a + b.",
        [("1 2\n", "3\n")],
        [("5 5\n", "10\n")],
        [("0 0\n", "0\n"), ("7 1\n", "8\n")],
        solutions=[(2, "int main() {}"), (1, "print 3"), (3, ADD)],
        seconds=2,
        nanos=500_000_000,
    ),
    cc_row("2_B. Echo", "Print the input line.", [("hi\n", "hi\n")], solutions=[(2, "int main() {}")], seconds=0),
]
TEST = [
    cc_row("3_C. Double", "Print 2x.", [("2\n", "4\n")], [("5\n", "10\n")], solutions=[(3, "print(2 * int(input()))")]),
    cc_row("4_D. Picture", "Count the shapes in <image>.", [("1\n", "1\n")]),
    cc_row("5_E. Neg", "Print -x.", [("2\n", "-2\n")], generated=[("0\n", "0\n")]),
]


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_parquet(path: Path, rows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def cc_task(*overrides):
    return compose(["task=codecontests", "task.few_shot=0", *overrides]).task


def test_codecontests_from_jsonl(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "test.jsonl", TEST)
    data = load_task(cc_task(f"task.path={tmp_path}"))
    assert [p.question for p in data.eval] == ["Print 2x.", "Print -x."]  # the <image> problem is dropped
    add = next(p for p in data.train if "a + b" in p.question)
    assert [(t.test_set, t.input) for t in add.tests] == [
        ("public", "1 2\n"),
        ("private", "5 5\n"),
        ("generated", "0 0\n"),
        ("generated", "7 1\n"),
    ]
    assert add.solution == f"```python\n{ADD}\n```"  # the Python 3 solution, not the C++ or Python 2 one
    assert add.time_limit_s == 2.5 and add.memory_mb == 256 and task_kind("codecontests") == "code"
    echo = next(p for p in data.train if "input line" in p.question)
    assert echo.solution == "" and echo.time_limit_s is None  # no Python 3 solution; limit 0 = none given


def test_codecontests_test_selection_and_cap(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "test.jsonl", TEST)
    data = load_task(
        cc_task(
            f"task.path={tmp_path}",
            "task.code.tests=[private,public]",
            "task.code.max_tests=1",
            "task.code.drop_image_problems=false",
        )
    )
    assert len(data.eval) == 3
    add = next(p for p in data.train if "a + b" in p.question)
    assert [t.test_set for t in add.tests] == ["private"]


def test_codecontests_from_the_hub_layout_in_parquet(tmp_path):
    """The hub repository's own layout (data/<split>-*.parquet), read directly and through datasets."""
    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", TRAIN)
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", TEST)
    write_parquet(tmp_path / "data" / "valid-00000-of-00001.parquet", TEST[:1])
    local = load_task(cc_task(f"task.path={tmp_path}"))
    hub = load_task(cc_task(f"task.hub_id={tmp_path}"))  # datasets.load_dataset on a local copy
    assert [p.question for p in hub.eval] == [p.question for p in local.eval] == ["Print 2x.", "Print -x."]
    assert [p.tests for p in hub.train] == [p.tests for p in local.train]
    verdicts = CodeVerifier(cc_task().code).verify([(p, p.solution) for p in hub.train + hub.eval if p.solution])
    assert all(v["correct"] for v in verdicts) and len(verdicts) == 2


@pytest.mark.parametrize(
    "row, message",
    [
        ({"name": "x"}, "not a CodeContests row"),
        ({**TRAIN[0], "public_tests": {"input": ["1\n"], "output": []}}, "has 1 inputs but 0 outputs"),
        ({**TRAIN[0], "description": ""}, "problem statement must be a non-empty string"),
        ({**TRAIN[1], "public_tests": io_block([])}, "no tests of the selected kinds"),
    ],
)
def test_malformed_codecontests_rows_are_named(tmp_path, row, message):
    write_jsonl(tmp_path / "train.jsonl", [TRAIN[0], row])
    write_jsonl(tmp_path / "test.jsonl", TEST)
    with pytest.raises(DataError, match=message) as err:
        load_task(cc_task(f"task.path={tmp_path}"))
    assert "train.jsonl:2" in str(err.value)


def test_codecontests_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="no train.jsonl and no train\\*.parquet"):
        load_task(cc_task(f"task.path={tmp_path}"))


def test_leetcode_format(tmp_path):
    data = load_task(compose(["task=leetcode", f"task.path={DATA}"]).task)
    assert len(data.train) == 6 and len(data.eval) == 4
    two_sum = next(p for p in data.train if p.id == "two-sum")
    assert two_sum.entry_point == "twoSum" and "Implement the method `twoSum`" in two_sum.question
    assert "Starter code:" in two_sum.question


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "not valid JSON"),
        (json.dumps({"question": "q"}), "field 'tests' must be a list"),
        (json.dumps({"question": "q", "tests": [{"input": "1"}]}), "field 'tests' must be a list"),
        (json.dumps({"question": "q", "tests": [{"input": "1", "output": "1"}], "solution": 3}), "field 'solution'"),
    ],
)
def test_malformed_leetcode_rows_are_named(tmp_path, line, message):
    (tmp_path / "train.jsonl").write_text(line + "\n")
    (tmp_path / "test.jsonl").write_text((DATA / "test.jsonl").read_text())
    with pytest.raises(DataError, match=message) as err:
        load_task(compose(["task=leetcode", f"task.path={tmp_path}"]).task)
    assert "train.jsonl:1" in str(err.value)


def test_impossible_code_settings_are_rejected():
    with pytest.raises(ConfigError, match="task.code.tests must list some of"):
        validate(compose(["task=leetcode", "task.code.tests=[hidden]"]))
    with pytest.raises(ConfigError, match="time_limit_scale must be > 0"):
        validate(compose(["task=codecontests", "task.code.time_limit_scale=0"]))
    with pytest.raises(ConfigError, match="task.code.python must be an existing interpreter"):
        validate(compose(["task=leetcode", "task.code.python=/nope/python"]))


def test_a_round_on_a_code_task(tiny_model_dir, tmp_path):
    """Human solutions are verified in the sandbox, pruned, trained on; eval judges the model's programs."""
    cfg = compose(
        tiny_overrides(tiny_model_dir)
        + [
            "task=leetcode",
            f"task.path={DATA}",
            "task.few_shot=1",
            "task.train_questions=null",
            "source=human",
            "pruning=soft",
            "rounds=1",
            "think.n=1",
            "eval.n=2",
            "eval.k=[1,2]",
            "task.code.workers=2",
        ]
    )
    rows = loop.run_cell(cfg, tmp_path)
    stats = json.loads((tmp_path / "round_1" / "prune" / "stats.json").read_text())
    assert stats["samples"] == stats["correct_samples"] == 5  # every human solution passes (1 is the shot)
    assert rows[1]["data_size"] == 3
    samples = [json.loads(l) for l in (tmp_path / "round_1" / "eval" / "samples.jsonl").open()]
    assert len(samples) == 6 and all("verdict" in s and "tests_total" in s for s in samples)
    # A random tiny model writes no code: every sample is judged so, and the metrics say why.
    assert rows[1]["pass@1"] == 0.0 and rows[1]["verdict/no_code"] == 1.0
