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
    assert m["correct@4"] == pytest.approx(2 / 3)
    assert m["correct@1"] == pytest.approx(1 / 3)  # only the first question is right on its first sample
    assert m["questions"] == 3 and m["samples"] == 12


def test_diversity_separates_collapsed_from_varied_samples():
    from tpt.metrics import diversity

    same = [{"pred": "5", "completion": "2 + 3 = 5\n#### 5"}] * 4
    varied = [{"pred": p, "completion": c} for p, c in
              [("5", "two plus three is 5"), ("6", "add them: 6"), (None, "no idea at all"), ("5", "2 + 3 = 5")]]
    collapsed, mixed = diversity([same]), diversity([varied])
    assert collapsed == {"distinct_answers": 1.0, "text_diversity": 0.0}
    assert mixed["distinct_answers"] == 3.0  # 5, 6 and no answer
    assert 0.9 < mixed["text_diversity"] <= 1.0
