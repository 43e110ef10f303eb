import itertools
import math

import pytest

from tpt.metrics import pass_at_k, summarize


def brute_force_pass_at_k(n, c, k):
    """Share of all k-subsets of n samples (c correct) that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert math.isclose(pass_at_k(n, c, k), brute_force_pass_at_k(n, c, k), abs_tol=1e-12)


def test_pass_at_1_is_the_fraction_correct():
    assert pass_at_k(20, 7, 1) == pytest.approx(7 / 20)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_summarize():
    m = summarize([[True, False, False, False], [False, False, False, True], [False] * 4], ks=[1, 4])
    assert m["pass@1"] == pytest.approx(2 / 12)
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert m["correct@4"] == 2  # a count of questions, as the paper reports it (415 of 500)
    # k < n: expected over which sample is drawn, not the first one (which only question 1 got right)
    assert m["correct@1"] == pytest.approx(0.25 + 0.25)
    assert m["questions"] == 3 and m["samples"] == 12


def test_diversity_separates_collapsed_from_varied_samples():
    from tpt.metrics import diversity

    same = [{"pred": "5", "completion": "2 + 3 = 5\n#### 5"}] * 4
    varied = [
        {"pred": p, "completion": c}
        for p, c in [("5", "two plus three is 5"), ("6", "add them: 6"), (None, "no idea at all"), ("5", "2 + 3 = 5")]
    ]
    collapsed, mixed = diversity([same]), diversity([varied])
    assert (collapsed["distinct_answers"], collapsed["text_diversity"]) == (1.0, 0.0)
    assert mixed["distinct_answers"] == 3.0  # 5, 6 and no answer
    assert 0.9 < mixed["text_diversity"] <= 1.0


def brute_force_correct_at_k(per_question, k):
    """Questions with a correct sample among k, averaged over every k-subset of each question's samples."""
    total = 0.0
    for v in per_question:
        subsets = list(itertools.combinations(range(len(v)), k))
        total += sum(any(v[i] for i in s) for s in subsets) / len(subsets)
    return total


def test_correct_at_k_is_the_expected_count_over_draws():
    import random

    rng = random.Random(0)
    per_question = [[rng.random() < p for _ in range(6)] for p in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0) * 3]
    m = summarize(per_question, ks=[1, 2, 3, 6])
    for k in (1, 2, 3, 6):
        assert m[f"correct@{k}"] == pytest.approx(brute_force_correct_at_k(per_question, k))
    assert m["correct@6"] == sum(any(v) for v in per_question)  # k = n: an exact count


def test_standard_errors_match_a_bootstrap_over_questions():
    """The analytic standard error of a mean over questions agrees with resampling the questions."""
    import random

    import numpy as np

    from tpt.metrics import per_question_pass

    rng = random.Random(1)
    per_question = [[rng.random() < p for _ in range(8)] for p in [rng.random() for _ in range(200)]]
    m = summarize(per_question, ks=[1, 4])
    gen = np.random.default_rng(0)
    for k in (1, 4):
        values = np.array(per_question_pass(per_question, k))
        boot = [values[gen.integers(0, len(values), len(values))].mean() for _ in range(4000)]
        assert m[f"pass@{k}_se"] == pytest.approx(np.std(boot), rel=0.08)
        assert m[f"correct@{k}_se"] == pytest.approx(m[f"pass@{k}_se"] * 200)


def test_paired_difference_matches_a_brute_force_computation():
    from tpt.metrics import paired_difference

    a = {"q1": 1.0, "q2": 0.5, "q3": 0.25, "q4": 0.0, "only_a": 1.0}
    b = {"q1": 0.5, "q2": 0.5, "q3": 0.0, "q4": 0.25, "only_b": 0.0}
    diffs = [0.5, 0.0, 0.25, -0.25]  # on the common questions only
    mean = sum(diffs) / 4
    var = sum((d - mean) ** 2 for d in diffs) / 3
    se = math.sqrt(var / 4)
    d = paired_difference(a, b)
    assert d["questions"] == 4
    assert d["diff"] == pytest.approx(mean) and d["se"] == pytest.approx(se) and d["z"] == pytest.approx(mean / se)
    with pytest.raises(ValueError, match="share no question"):
        paired_difference({"x": 1.0}, {"y": 1.0})
