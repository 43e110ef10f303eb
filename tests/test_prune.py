"""The pruning rules (tpt/pruning.py): what each keeps, the one-per-question seeded selection, and
the rules beyond the paper's with their parameters, composed from conf/pruning/ as a user selects them."""

import logging

import pytest

from tests.conftest import compose
from tpt.config import ConfigError
from tpt.pruning import RULES, kept_per_question, prune, rule_of
from tpt.validate import validate

GT, NONE = RULES["gt"](), RULES["none"]()


def samples(spec):
    """spec: {qid: [(completion, correct), ...]}"""
    return [{"qid": q, "completion": c, "correct": ok} for q, rows in spec.items() for c, ok in rows]


SPEC = {
    "q1": [("a\n#### 1", True), ("a\n#### 1", True), ("b\n#### 2", False)],
    "q2": [("c\n#### 3", False), ("d\n#### 4", False)],
    "q3": [("e\n#### 5", True), ("f\n#### 5", True)],
    "q4": [("g\n#### 6", False), ("h\n#### 7", True)],
}


def test_gt_keeps_one_correct_unique_sample_per_question():
    kept, stats = prune(samples(SPEC), GT, size=10, seed=0)
    assert sorted(s["qid"] for s in kept) == ["q1", "q3", "q4"]
    assert all(s["correct"] for s in kept)
    assert stats["correct_samples"] == 5 and stats["questions_with_correct"] == 3
    assert stats["size"] == 3 and stats["requested_size"] == 10 and stats["available"] == 3


def test_none_keeps_wrong_samples_too():
    kept, stats = prune(samples(SPEC), NONE, size=10, seed=0)
    assert sorted(s["qid"] for s in kept) == ["q1", "q2", "q3", "q4"]
    assert stats["size"] == 4


def test_seeded_draw_of_data_size():
    many = samples({f"q{i:02d}": [(f"x{i}", True)] for i in range(50)})
    a, _ = prune(many, GT, size=10, seed=1)
    b, _ = prune(many, GT, size=10, seed=1)
    c, _ = prune(many, GT, size=10, seed=2)
    assert [s["qid"] for s in a] == [s["qid"] for s in b]
    assert [s["qid"] for s in a] != [s["qid"] for s in c]
    assert len(a) == 10 and len({s["qid"] for s in a}) == 10


def test_too_few_examples_warns_and_uses_all(caplog):
    with caplog.at_level(logging.WARNING):
        kept, stats = prune(samples(SPEC), GT, size=100, seed=0)
    assert "fewer than data.size=100" in caplog.text
    assert stats["size"] == len(kept) == 3


def votes(spec):
    """spec: {qid: [(pred, correct, n_tokens), ...]}, each sample its own completion."""
    return [
        {"qid": q, "completion": f"{q}-{i} #### {p}", "pred": p, "correct": ok, "n_tokens": n}
        for q, rows in spec.items()
        for i, (p, ok, n) in enumerate(rows)
    ]


def test_the_majority_rule_keeps_the_agreeing_answer_whatever_the_ground_truth():
    rule = rule_of(compose(["pruning=majority"]).pruning)
    assert rule.cfg.min_votes == 2  # conf/pruning/majority.yaml
    spec = {
        "a": [("3", False, 9), ("3", False, 9), ("4", True, 9)],  # a wrong majority is kept: no ground truth
        "b": [("1", True, 9), ("2", False, 9)],  # a tie: nothing
        "c": [("5", True, 9), (None, False, 9), (None, False, 9)],  # unanswered samples do not vote
        "d": [("7", True, 9), ("7", True, 9), ("7", True, 9)],
    }
    assert kept_per_question(rule, votes(spec)) == {"a": 2, "d": 3}
    kept, stats = prune(votes(spec), rule, size=10, seed=0)
    assert [(s["qid"], s["pred"]) for s in kept] == [("a", "3"), ("d", "7")] and stats["kept_samples"] == 5
    strict = rule_of(compose(["pruning=majority", "pruning.min_votes=3"]).pruning)
    assert kept_per_question(strict, votes(spec)) == {"d": 3}


def test_the_length_cap_keeps_correct_samples_up_to_its_limit():
    rule = rule_of(compose(["pruning=length_cap", "pruning.max_tokens=20"]).pruning)
    spec = {"a": [("1", True, 20), ("1", True, 21), ("2", False, 5)], "b": [("3", True, 40)]}
    assert kept_per_question(rule, votes(spec)) == {"a": 1}
    assert kept_per_question(RULES["gt"](), votes(spec)) == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["pruning=majority", "pruning.min_votes=0"], "pruning.min_votes must be >= 1"),
        (["pruning=length_cap", "pruning.max_tokens=0"], "pruning.max_tokens must be >= 1"),
        (["pruning=majority", "task=minicode"], r"pruning.strategy majority \(majority vote\) prunes math tasks only"),
        (["pruning=soft"], r"pruning.strategy soft \(soft-positive\) prunes code tasks only"),
    ],
)
def test_a_rule_checks_its_parameters_and_task_kind(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose(overrides))


def test_a_parameter_of_another_rule_is_refused_when_composed():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="max_tokens"):
        compose(["pruning=majority", "pruning.max_tokens=3"])
