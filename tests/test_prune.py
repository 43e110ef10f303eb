import logging

from tpt.stages.prune import prune


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
    kept, stats = prune(samples(SPEC), "gt", size=10, seed=0)
    assert sorted(s["qid"] for s in kept) == ["q1", "q3", "q4"]
    assert all(s["correct"] for s in kept)
    assert stats["correct_samples"] == 5 and stats["questions_with_correct"] == 3
    assert stats["size"] == 3 and stats["requested_size"] == 10 and stats["available"] == 3


def test_none_keeps_wrong_samples_too():
    kept, stats = prune(samples(SPEC), "none", size=10, seed=0)
    assert sorted(s["qid"] for s in kept) == ["q1", "q2", "q3", "q4"]
    assert stats["size"] == 4


def test_seeded_draw_of_data_size():
    many = samples({f"q{i:02d}": [(f"x{i}", True)] for i in range(50)})
    a, _ = prune(many, "gt", size=10, seed=1)
    b, _ = prune(many, "gt", size=10, seed=1)
    c, _ = prune(many, "gt", size=10, seed=2)
    assert [s["qid"] for s in a] == [s["qid"] for s in b]
    assert [s["qid"] for s in a] != [s["qid"] for s in c]
    assert len(a) == 10 and len({s["qid"] for s in a}) == 10


def test_too_few_examples_warns_and_uses_all(caplog):
    with caplog.at_level(logging.WARNING):
        kept, stats = prune(samples(SPEC), "gt", size=100, seed=0)
    assert "fewer than data.size=100" in caplog.text
    assert stats["size"] == len(kept) == 3
