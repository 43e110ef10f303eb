import json

import pytest

from tpt.verify.math import (
    answer_done,
    check,
    extract_lenient,
    extract_strict,
    gold_answer,
    normalize_number,
    truncate_after_answer,
)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("72", "72"),
        ("72.", "72"),
        ("1,000", "1000"),
        ("$1,234.50", "1234.5"),
        ("-5", "-5"),
        ("-0.25", "-0.25"),
        ("5.00", "5"),
        (" 18 ", "18"),
        ("100", "100"),
        ("0.0", "0"),
        (".5", "0.5"),
        ("12 apples", None),
        ("abc", None),
        ("", None),
        ("1/2", None),
        ("5,000.00", "5000"),
        ("72..", None),
    ],
)
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_strict_takes_lm_evals_first_match():
    assert extract_strict("2 + 3 = 5\n#### 5") == "5"
    assert extract_strict("The answer is 5") is None
    assert extract_strict("#### five") is None
    assert extract_strict("#### 5 apples") == "5"  # lm-eval's strict-match reads the number and stops
    assert extract_strict("**#### 38**") == "38"  # Gemma's bold answer line
    assert extract_strict("so\n**##### 38**") == "38"  # the paper's own trace (appendix B.5)
    assert extract_strict("#### Step 1: add\n3 + 4 = 7\n#### 7") == "7"  # a markdown heading is no answer
    assert extract_strict("End with '#### <number>'.\n#### 12") == "12"  # nor an echoed instruction
    assert extract_strict("#### 18 dollars\n#### 20") == "18"  # the first answer counts
    assert extract_strict("#### $1,200.") is None  # lm-eval's regex takes no `$` after `#### `


def test_whole_line_keeps_the_earlier_stricter_rule():
    assert extract_strict("#### $1,200.", "whole_line") == "1200"
    assert extract_strict("#### 5 apples", "whole_line") is None  # format counts
    assert extract_strict("**#### 38**", "whole_line") is None
    assert extract_strict("#### Step 1\n#### 7", "whole_line") is None  # the first `####` line decides


def test_lenient_is_lm_evals_flexible_extract():
    assert extract_lenient("so 3 + 4 = 7 apples") == "7"
    assert extract_lenient("no digits") is None
    assert extract_lenient("it costs $1,200.") == "1200"


def test_check_reports_both_and_only_strict_counts():
    v = check("she has 7 now", "7")
    assert v["correct"] is False and v["lenient_correct"] is True
    v = check("3 + 4 = 7\n#### 7", "7")
    assert v["correct"] is True and v["pred"] == "7"
    assert check("#### -3", "-3")["correct"]
    assert check("#### 2.50", gold_answer("#### 2.5"))["correct"]
    assert check("#### 5,000.00", "5000")["correct"]  # numeric, where lm-eval compares strings


def test_the_gold_answer_is_normalised_too():
    assert check("#### 2,125", "2,125")["correct"]
    assert check("#### 2125", "$2,125.")["correct"]


@pytest.mark.parametrize(
    "text, done",
    [
        ("x\n#### 12\n", True),
        ("x\n#### 12", False),  # the number may still go on
        ("#### 12 dollars", False),  # its line is not finished yet
        ("**#### 38**\n", True),
        ("##### 38\n", True),  # the extractor reads 38 here, so generation may stop
        ("Format: ####\n12\n", False),  # no answer on the `####` line: not an answer, keep going
        ("#### Step 1: add\n3 + 4\n", False),
    ],
)
def test_generation_stops_exactly_when_the_judged_answer_is_complete(text, done):
    assert answer_done(text) is done
    if done:  # what stopped generation is what is judged
        assert extract_strict(text) is not None


def test_the_stored_completion_is_cut_after_the_judged_answer():
    assert truncate_after_answer("a\n#### 12\nblah blah") == "a\n#### 12"
    assert truncate_after_answer("#### Step 1: add\n3 + 4 = 7\n#### 7\nmore") == "#### Step 1: add\n3 + 4 = 7\n#### 7"
    assert truncate_after_answer("**#### 38** done\nextra") == "**#### 38** done"
    assert truncate_after_answer("no answer at all\nstill going") == "no answer at all\nstill going"


def test_every_gsm8k_gold_answer_parses(gsm8k_dir):
    with_commas = {}
    for split in ("train", "test"):
        for line in (gsm8k_dir / f"{split}.jsonl").read_text().splitlines():
            answer = json.loads(line)["answer"]
            raw = answer.rsplit("####", 1)[1].strip()
            with_commas[split] = with_commas.get(split, 0) + ("," in raw)
            gold = gold_answer(answer)
            assert gold is not None, answer
            assert check(f"work\n#### {raw}", gold)["correct"]  # the gold text as written is correct
    assert with_commas == {"train": 79, "test": 14}  # thousands separators the normalisation must handle


# --- the second judge: math-verify on the whole completion, beside the answer rule --------------------------
SECOND_JUDGE_CASES = [
    # (completion, gold, the rule's verdict (lm-eval strict `#### N`), math-verify's)
    ("6*7 = 42.\n#### 42", "42", True, True),  # both right
    ("She has 40 apples.\n#### 40", "42", False, False),  # both wrong
    ("#### 1,000", "1000", True, True),  # both read the thousands separator
    ("#### 42\nSo the total is 41.", "42", True, False),  # the rule takes the first `####`, math-verify the last number
    ("The answer is $\\frac{84}{2}$.", "42", False, True),  # no `####`: math-verify evaluates the LaTeX
    ("The answer is 42 dollars", "42", False, True),  # no `####`: math-verify takes the last number
    ("So $x = \\boxed{\\frac{2}{4}}$.", "\\frac{1}{2}", False, True),  # a LaTeX gold (MATH's): equal symbolically
]


@pytest.mark.parametrize("completion, gold, rule, second", SECOND_JUDGE_CASES)
def test_the_second_judge_agrees_where_it_must_and_differs_where_it_is_known_to(completion, gold, rule, second):
    from types import SimpleNamespace

    from tpt.verify import MathVerifier

    [verdict] = MathVerifier("lm_eval").verify([(SimpleNamespace(answer=gold), completion)])
    assert (verdict["correct"], verdict["second_correct"]) == (rule, second)


def test_eval_metrics_count_each_kind_of_disagreement():
    from tpt.stages.eval import metrics

    rows = [
        {
            "qid": f"q{i // 2}",
            "correct": c,
            "second_correct": s,
            "lenient_correct": c,
            "pred": "1",
            "n_tokens": 5,
            "completion": f"x{i}",
            "answer": "1",
        }
        for i, (c, s) in enumerate([(True, True), (True, False), (False, True), (False, None)])
    ]
    m = metrics(rows, [1, 2], "math", 48)
    assert m["judge_agreement"] == 0.5  # the first and the last (a timeout counts as wrong, as the rule judged it)
    assert (m["judge_rule_only"], m["judge_second_only"], m["judge_timeouts"]) == (1, 1, 1)
    assert m["second_pass@1"] == pytest.approx((0.5 + 0.5) / 2) and m["pass@1"] == pytest.approx((1.0 + 0.0) / 2)


def test_eval_metrics_give_pass_at_k_for_every_k_and_the_length_spread():
    from tpt.stages.eval import metrics

    rows = [
        {
            "qid": f"q{i // 4}",
            "correct": i in (0, 5, 6),
            "lenient_correct": False,
            "pred": None,
            "n_tokens": 10 * i,
            "completion": f"x{i}",
            "answer": "1",
            "second_correct": False,
        }
        for i in range(8)
    ]
    m = metrics(rows, [1], "math", 100)
    # q0: 1 of 4 correct, q1: 2 of 4: Pass@k = 1 - C(n-c, k)/C(n, k), averaged
    assert m["pass_curve"] == pytest.approx([(1 / 4 + 2 / 4) / 2, (1 / 2 + 5 / 6) / 2, (3 / 4 + 1) / 2, 1.0])
    assert (m["tokens_p10"], m["tokens_p50"], m["tokens_p90"]) == pytest.approx((7.0, 35.0, 63.0))


def test_prune_counts_distinct_correct_solutions_per_solved_question():
    from tpt.pruning import GroundTruth, prune

    samples = [
        {"qid": "a", "completion": t, "correct": ok}
        for t, ok in [("x", True), (" x ", True), ("y", True), ("z", False)]
    ]
    samples += [{"qid": "b", "completion": "w", "correct": False}]
    _, stats = prune(samples, GroundTruth(), 1, seed=0)
    assert stats["unique_correct"] == 2.0  # "x" (written twice) and "y"; b has none and does not count
