import json

import pytest

from tpt.verify.math import (ANSWER_LINE_DONE, check, extract_lenient, extract_strict, gold_answer,
                             normalize_number, truncate_after_answer)


@pytest.mark.parametrize("raw,expected", [
    ("72", "72"), ("72.", "72"), ("1,000", "1000"), ("$1,234.50", "1234.5"), ("-5", "-5"),
    ("-0.25", "-0.25"), ("5.00", "5"), (" 18 ", "18"), ("100", "100"), ("0.0", "0"), (".5", "0.5"),
    ("12 apples", None), ("abc", None), ("", None), ("1/2", None),
])
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_strict_needs_the_answer_line_and_a_bare_number():
    assert extract_strict("2 + 3 = 5\n#### 5") == "5"
    assert extract_strict("#### $1,200.") == "1200"
    assert extract_strict("The answer is 5") is None
    assert extract_strict("#### five") is None
    assert extract_strict("#### 5 apples") is None  # strict: format counts


def test_lenient_takes_the_last_number():
    assert extract_lenient("so 3 + 4 = 7 apples") == "7"
    assert extract_lenient("no digits") is None


def test_check_reports_both_and_only_strict_counts():
    v = check("she has 7 now", "7")
    assert v["correct"] is False and v["lenient_correct"] is True
    v = check("3 + 4 = 7\n#### 7", "7")
    assert v["correct"] is True and v["pred"] == "7"
    assert check("#### -3", "-3")["correct"]
    assert check("#### 2.50", gold_answer("#### 2.5"))["correct"]


def test_answer_line_done_and_truncate():
    assert ANSWER_LINE_DONE.search("x\n#### 12\n")
    assert not ANSWER_LINE_DONE.search("x\n#### 12")  # the number may still go on
    assert truncate_after_answer("a\n#### 12\nblah blah") == "a\n#### 12"


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
