"""benchmarks/fidelity.py's verdicts come from the numbers: on run directories written here with known
per-question outcomes, its paired estimates, pooling and yes/no answers are the ones computed by hand."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from tpt.metrics import summarize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "benchmarks" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fidelity"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def write_cell(root: Path, size: int, pruning: str, outcomes: dict) -> None:
    """outcomes: round -> list over questions of list over samples of (correct, pred)."""
    cell = root / f"data_size={size // 1000}k,pruning={pruning}"
    cell.mkdir(parents=True)
    (cell / "run_config.yaml").write_text(yaml.safe_dump({"data": {"size": size}, "pruning": {"strategy": pruning}}))
    rows = []
    for r, questions in outcomes.items():
        samples = [
            {"qid": f"q{q}", "sample": s, "correct": ok, "pred": pred, "n_tokens": 20}
            for q, draws in enumerate(questions)
            for s, (ok, pred) in enumerate(draws)
        ]
        out = cell / f"round_{r}" / "eval"
        out.mkdir(parents=True)
        (out / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in samples))
        n = len(questions[0])
        m = summarize([[ok for ok, _ in d] for d in questions], [1, n])
        m.update(round=r, cut_rate=0.0, distinct_answers=0.0)
        rows.append(m)
    (cell / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in rows))


def right(n):  # n samples, all correct, one answer
    return [(True, "7")] * n


def wrong(n, answers=1):  # n wrong samples spread over `answers` distinct answers
    return [(False, str(i % answers)) for i in range(n)]


def test_a_clear_gain_is_yes_and_no_change_is_no(tmp_path, fidelity):
    q = 8
    # gt: round 0 solves 2 of 8 questions, rounds 1-2 solve 7 of 8; none: stays at 2 of 8
    base = [right(4)] * 2 + [wrong(4, answers=4)] * (q - 2)
    better = [right(4)] * 7 + [wrong(4)]
    write_cell(tmp_path, 2000, "gt", {0: base, 1: better, 2: better})
    write_cell(tmp_path, 2000, "none", {0: base, 1: base, 2: base})
    cells = fidelity.seed_cells(tmp_path)
    got = fidelity.answer(1, cells, R=2)
    # (a): 5 of 8 questions go from 0 to 1: mean 5/8, SE of the 0/1 differences
    assert got.a.value == pytest.approx(5 / 8)
    assert got.a.se == pytest.approx(math.sqrt((5 / 8) * (3 / 8) / 7))
    assert got.a.above() and got.b.above()
    # (c): rounds 1 and 2 are the same: Pass@1 does not rise, Pass@4 is flat
    assert got.c_pass1.value == 0 and not got.c_pass1.above() and got.c_passk.flat()
    # (d): 6 of the 8 questions had 4 distinct wrong answers at round 0 and have one at round 2
    assert got.d.value == pytest.approx(-(6 * 3) / 8)
    lines = "\n".join(fidelity.verdicts([got], R=2))
    assert "(a) round 2 with pruning beats the base model" in lines and "1 of 1 seeds say yes" in lines
    assert "Pass@1 rises after round 1 (round 2 - round 1)\n    seed 1: +0.000 ± 0.000 no" in lines


def test_the_data_size_answers_are_paired_differences_between_sizes(tmp_path, fidelity):
    q = 10
    base = [wrong(4)] * q
    write_cell(tmp_path, 2000, "gt", {0: base, 1: base, 2: [right(4)] * 5 + [wrong(4)] * 5})
    write_cell(tmp_path, 2000, "none", {0: base, 1: base, 2: base})
    write_cell(tmp_path, 1000, "gt", {0: base, 1: base, 2: [right(4)] * 2 + [wrong(4)] * 8})
    write_cell(tmp_path, 1000, "none", {0: base, 1: base, 2: [right(4)] * 2 + [wrong(4)] * 8})
    write_cell(tmp_path, 6000, "gt", {0: base, 1: base, 2: [right(4)] * 9 + [wrong(4)]})
    write_cell(tmp_path, 6000, "none", {0: base, 1: base, 2: [right(4)] * 1 + [wrong(4)] * 9})
    got = fidelity.answer(1, fidelity.seed_cells(tmp_path), R=2)
    assert got.e_rise.value == pytest.approx(0.9 - 0.2)  # 6k minus 1k, pruning
    assert got.e_gap.value == pytest.approx((0.9 - 0.1) - (0.2 - 0.2))  # the gap at 6k minus the gap at 1k
    assert got.e_rise.above() and got.e_gap.above()


def test_pooling_averages_the_seeds_and_takes_the_larger_standard_error(fidelity):
    E = fidelity.Estimate
    pooled, spread = fidelity.pool([E(0.30, 0.03), E(0.10, 0.04), E(0.20, 0.12)])
    assert pooled.value == pytest.approx(0.20)
    assert spread == pytest.approx(0.10)  # the sample SD of 0.3, 0.1, 0.2
    # within the seeds: sqrt(0.03^2 + 0.04^2 + 0.12^2) / 3 = 0.0433; between them: 0.10 / sqrt(3) = 0.0577
    assert pooled.se == pytest.approx(0.10 / math.sqrt(3))
    # seeds that agree: the within-seed SEs are the larger
    pooled, _ = fidelity.pool([E(0.20, 0.03), E(0.20, 0.04), E(0.20, 0.12)])
    assert pooled.se == pytest.approx(math.sqrt(0.03**2 + 0.04**2 + 0.12**2) / 3)
    one, spread = fidelity.pool([E(0.3, 0.1)])
    assert (one.value, one.se) == (0.3, 0.1) and math.isnan(spread)


def test_the_per_question_correlation_is_pearsons(fidelity):
    a = {"q1": 0.0, "q2": 0.5, "q3": 1.0}
    assert fidelity.correlation(a, {"q1": 1.0, "q2": 0.5, "q3": 0.0}) == pytest.approx(-1.0)
    assert math.isnan(fidelity.correlation(a, {"q1": 1.0, "q2": 1.0, "q3": 1.0}))


def test_an_answer_longer_than_the_old_limit_counts_as_cut(tmp_path, fidelity):
    write_cell(tmp_path, 2000, "gt", {0: [right(2), right(2)]})
    path = next(tmp_path.glob("*/round_0/eval/samples.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["n_tokens"] = fidelity.OLD_LIMIT + 1  # q0's first sample needed one token more than 48
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cell = fidelity.seed_cells(tmp_path)[("2k", "gt")]
    assert fidelity.pass1_within(cell, 0) == {"q0": 0.5, "q1": 1.0}


def test_the_judges_table_counts_each_pair_of_verdicts(tmp_path, fidelity, capsys):
    cell = tmp_path / "judges" / "task=arith"
    (cell / "round_0" / "eval").mkdir(parents=True)
    (cell / "run_config.yaml").write_text(yaml.safe_dump({"task": {"name": "arith"}}))
    (cell / "metrics.jsonl").write_text(json.dumps({"round": 0, "cut_rate": 0.0}) + "\n")
    verdicts = [(True, True, True), (False, True, True), (False, False, True), (False, False, False)]
    rows = [
        {"qid": f"q{i}", "sample": 0, "correct": s, "lenient_correct": le, "second_correct": mv}
        | {"completion": "x", "answer": "7"}
        for i, (s, le, mv) in enumerate(verdicts)
    ]
    (cell / "round_0" / "eval" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fidelity.judges_report(tmp_path / "judges")
    out = capsys.readouterr().out
    # strict 1/4, lenient 2/4, math-verify 3/4; strict=lenient 3/4, strict=m-v 2/4, lenient=m-v 3/4, all 2/4
    assert "arith          0        4   0.250    0.500 0.750  0.750  0.500  0.750  0.500" in out
    assert "+++:1 -++:1 --+:1 ---:1" in out
    assert "2 where math-verify says right, the rule wrong" in out
