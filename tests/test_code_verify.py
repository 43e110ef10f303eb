"""Code verification: extraction, DeepMind-style output comparison, and verdicts of real runs on
the project's own problems (tests/data/code) with correct, wrong, partly right and slow programs."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tpt.compose import compose
from tpt.pruning import RULES, prune
from tpt.tasks import load_task
from tpt.verify import code as code_mod
from tpt.verify.code import CodeVerifier, extract_code, outputs_match, truncate_after_code

DATA = Path(__file__).parent / "data" / "code"


@pytest.mark.parametrize(
    "text, code",
    [
        ("Idea first.\n```python\nprint(1)\n```\nDone.", "print(1)"),
        ("```py\nx = 2\nprint(x)\n```", "x = 2\nprint(x)"),
        ("```\nprint(3)\n```", "print(3)"),  # untagged blocks count
        ("```Python3\nprint(4)\n```", "print(4)"),
        ("```text\n5\n```\n```python\nprint(5)\n```", "print(5)"),  # blocks in other languages are skipped
        ("```python\nprint(6)\n```\n```python\nprint(7)\n```", "print(6)"),  # the first python block
        ("print(8)", None),
        ("```python\nprint(9)", None),  # never closed: cut off by the token limit
    ],
)
def test_extract_code(text, code):
    assert extract_code(text) == code


def test_generation_is_cut_after_the_first_block():
    assert truncate_after_code("```python\nprint(1)\n```\nMore talk\n```python\nx\n```") == "```python\nprint(1)\n```"
    assert truncate_after_code("no block") == "no block"


@pytest.mark.parametrize(
    "got, want, match",
    [
        ("1 2 3\n", "1 2 3", True),
        ("1   2\n3\n\n", "1 2 3", True),  # whitespace of any kind separates tokens
        ("YES", "yes", True),  # case-insensitive, as DeepMind's tester
        ("2.5000001", "2.5", True),  # floats within 1e-5
        ("2.50002", "2.5", False),
        ("1.0", "1", True),  # a float and an int compare as numbers
        ("10", "010", True),  # two integers compare by value
        ("1 2", "1 2 3", False),
        ("abc", "abd", False),
        ("", "", True),
        ("nan", "0", False),
    ],
)
def test_outputs_match_like_deepmind(got, want, match):
    assert outputs_match(got, want) is match


@pytest.fixture(scope="module")
def task():
    cfg = compose(["task=leetcode", f"task.path={DATA}", "task.code.default_time_limit_s=1", "task.code.workers=2"])
    data = load_task(cfg.task)
    return cfg, {p.id: p for p in data.train + data.eval}


@pytest.fixture(scope="module")
def verifier(task):
    return CodeVerifier(task[0].task.code)


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```"


def test_every_reference_solution_passes(task, verifier):
    problems = list(task[1].values())
    verdicts = verifier.verify([(p, p.solution) for p in problems])
    assert [v["verdict"] for v in verdicts] == ["passed"] * len(problems)
    assert all(v["tests_run"] == v["tests_total"] == len(p.tests) for p, v in zip(problems, verdicts))


@pytest.mark.parametrize(
    "pid, code, verdict, some",
    [
        ("add-two", "a, b = map(int, input().split())\nprint(a - b)", "wrong_answer", False),
        ("add-two", "a, b = map(int, input().split())\nprint(3 if a == 1 else a - b)", "wrong_answer", True),
        ("add-two", "print(int('x'))", "runtime_error", False),
        ("add-two", "def f(:\n  pass", "syntax_error", False),
        ("add-two", "x = " + "-" * 100000 + "1", "syntax_error", False),  # too deep for the parser: never run
        ("sum-to-n", "n = int(input())\nprint(sum(range(n + 1)))", "timeout", True),  # right but too slow
        ("average", "n = int(input())\nprint(round(sum(map(int, input().split())) / n, 7))", "passed", True),
        (
            "two-sum",
            "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]",
            "wrong_answer",
            True,
        ),
    ],
)
def test_verdicts_of_real_runs(task, verifier, pid, code, verdict, some):
    v = verifier.verify([(task[1][pid], fenced(code))])[0]
    assert (v["verdict"], v["passed_some"], v["correct"]) == (verdict, some, verdict == "passed")
    assert v["lenient_correct"] == some and v["pred"] is not None


def test_completion_without_code_is_judged_without_running(task, verifier, monkeypatch):
    monkeypatch.setattr(CodeVerifier, "judge", lambda *a: pytest.fail("nothing should run"))
    v = verifier.verify([(task[1]["add-two"], "The answer is 3.")])[0]
    assert v["verdict"] == "no_code" and not v["correct"] and v["pred"] is None and v["tests_run"] == 0


def test_identical_programs_of_a_problem_run_once(task, verifier, monkeypatch):
    runs = []
    real = code_mod.CodeVerifier.judge
    monkeypatch.setattr(code_mod.CodeVerifier, "judge", lambda self, p, c: runs.append((p.id, c)) or real(self, p, c))
    p, q = task[1]["add-two"], task[1]["square"]
    sol = p.solution
    verdicts = verifier.verify([(p, sol), (p, "Again:\n" + sol), (q, sol), (p, fenced("print(0)"))])
    assert len(runs) == 3  # the same program on the same problem ran once; on another problem it runs
    assert [v["verdict"] for v in verdicts] == ["passed", "passed", "runtime_error", "wrong_answer"]


def test_tests_stop_once_both_verdicts_are_known(task, verifier):
    p = task[1]["is-prime"]  # 4 tests: YES, NO, NO, YES
    v = verifier.judge(p, "print('YES')")
    assert (v["tests_run"], v["tests_passed"], v["passed_some"]) == (2, 1, True)
    v = verifier.judge(p, "print('MAYBE')")  # fails everything: every test runs
    assert (v["tests_run"], v["tests_passed"]) == (4, 0)


def test_a_timeout_does_not_hide_a_later_passing_test(task, verifier):
    """Soft pruning's criterion: a program that times out on test 1 and passes test 2 passed some."""
    p = task[1]["is-prime"]  # 4 tests: 2 -> YES, 1 -> NO, ...
    v = verifier.judge(p, "n = int(input())\nwhile n == 2:\n    pass\nprint('NO')")
    assert (v["verdict"], v["tests_run"], v["tests_passed"], v["passed_some"]) == ("timeout", 2, 1, True)


def test_a_spent_budget_stops_a_failing_program_and_says_so(task):
    cfg = OmegaConf.merge(task[0].task.code, {"program_budget_s": 0.5})
    v = CodeVerifier(cfg).judge(task[1]["is-prime"], "while True:\n    pass")  # 1 s timeouts: one spends it
    assert (v["verdict"], v["tests_run"], v["budget_spent"], v["correct"]) == ("timeout", 1, True, False)


def test_soft_pruning_keeps_programs_passing_some_tests():
    samples = [
        {"qid": "a", "completion": "x1", "correct": True, "passed_some": True},
        {"qid": "b", "completion": "x2", "correct": False, "passed_some": True},
        {"qid": "c", "completion": "x3", "correct": False, "passed_some": False},
    ]
    assert {s["qid"] for s in prune(samples, RULES["soft"](), 10, 0)[0]} == {"a", "b"}
    assert {s["qid"] for s in prune(samples, RULES["gt"](), 10, 0)[0]} == {"a"}
    assert {s["qid"] for s in prune(samples, RULES["none"](), 10, 0)[0]} == {"a", "b", "c"}


def test_verdicts_are_cached_by_program_tests_and_limits(task, tmp_path, monkeypatch):
    """A second verifier on the same store reuses the verdicts; another test, time limit or program
    runs again; a call whose sandbox failed is not stored."""
    import dataclasses

    from tpt.cache import KeyedStore

    runs = []
    real = code_mod.CodeVerifier.judge
    monkeypatch.setattr(code_mod.CodeVerifier, "judge", lambda self, p, c: runs.append((p.id, c)) or real(self, p, c))
    store = KeyedStore(tmp_path / "verdicts", "verdicts")
    p = task[1]["add-two"]
    pairs = [(p, p.solution), (p, fenced("print(0)"))]
    code_cfg = task[0].task.code
    reused = []
    first = CodeVerifier(code_cfg, store).verify(pairs, reused=reused)
    assert len(runs) == 2 and [v["verdict"] for v in first] == ["passed", "wrong_answer"] and reused == []
    assert CodeVerifier(code_cfg, store).verify(pairs, reused=reused) == first and len(runs) == 2  # from the store
    assert len(reused) == 1 and reused[0] > 0  # what the reuse saved: the seconds the first judging took

    # The same program against another expected output is judged again, and differently.
    changed = dataclasses.replace(p, tests=(dataclasses.replace(p.tests[0], output="-1"),) + p.tests[1:])
    assert CodeVerifier(code_cfg, store).verify([(changed, p.solution)])[0]["verdict"] == "wrong_answer"
    assert len(runs) == 3
    slower = compose(
        ["task=leetcode", f"task.path={DATA}", "task.code.default_time_limit_s=1", "task.code.time_limit_scale=3"]
    ).task.code
    CodeVerifier(slower, store).verify(pairs)
    assert len(runs) == 5  # other limits: other verdicts, possibly

    monkeypatch.setattr(
        code_mod.CodeVerifier,
        "judge",
        lambda self, p, c: runs.append(c) or code_mod._verdict("sandbox_error", c, 0, 1, len(p.tests)),
    )
    odd = [(p, fenced("print(1)"))]
    CodeVerifier(code_cfg, store).verify(odd)
    CodeVerifier(code_cfg, store).verify(odd)
    assert len(runs) == 7  # the sandbox's own failure was not kept


def test_a_cell_keeps_verdicts_in_the_cache_unless_told_not_to(tmp_path):
    from tpt.cell import Cell, Prepared
    from tpt.rundir import RunDir

    data = load_task(compose(["task=minicode"]).task)
    for switch, kept in (("cache.verdicts=true", True), ("cache.verdicts=false", False)):
        cfg = compose(["task=minicode", f"cache.dir={tmp_path / 'cache'}", switch])
        cell = Cell.open(Prepared(cfg, {}, data, "unused", None), RunDir(tmp_path / switch))
        assert (cell.verifier.cache is not None) is kept
    cell = Cell.open(
        Prepared(compose(["task=minicode", "cache=off"]), {}, data, "unused", None), RunDir(tmp_path / "off")
    )
    assert cell.verifier.cache is None
