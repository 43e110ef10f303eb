"""GSM8K-style answer checking, as lm-evaluation-harness's `gsm8k` task extracts answers.

- strict (the reported metric): lm-eval's `strict-match` filter, the first `#### N` in the
  completion (regex `#### (-?[0-9.,]+)`); `task.strict_match=whole_line` instead asks the first
  line containing `####` to hold nothing but a number after it (stricter about format).
- lenient (reported beside it, never instead): lm-eval's `flexible-extract`, the last number.

Both extracted texts and the gold answer are normalised as lm-eval's `regexes_to_ignore` do
(`,` and `$` dropped, one trailing `.` dropped) and then compared as decimals, where lm-eval
compares strings: `#### 5,000.00` is correct for 5000 here. That is the one deliberate difference.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Optional

# task.strict_match -> the first match of this pattern holds the answer (group 1)
STRICT = {
    "lm_eval": re.compile(r"#### (\-?[0-9\.\,]+)"),  # lm-eval gsm8k.yaml, strict-match
    "whole_line": re.compile(r"####[ \t]*([^\n]*)"),  # the first `####` and the rest of its line
}
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval gsm8k.yaml, flexible-extract (last match)
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)")


def normalize_number(text: str) -> Optional[str]:
    """Canonical form of a number written as text, or None if the text is not exactly a number.
    Drops `,` and `$` and one trailing `.`, as lm-eval does, and surrounding whitespace."""
    s = text.strip().replace(",", "").replace("$", "")
    s = s[:-1] if s.endswith(".") else s
    s = s.strip().replace(" ", "")
    if not _DECIMAL.fullmatch(s):
        return None
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    text = format(value.normalize(), "f")  # "72.0" -> "72", "1E+2" -> "100"
    return "0" if text in ("-0", "+0") else text


def gold_answer(solution: str) -> Optional[str]:
    """The normalised number after the last `####` of a reference solution, or None."""
    if "####" not in solution:
        return None
    return normalize_number(solution.rsplit("####", 1)[1].split("\n", 1)[0])


def first_answer(completion: str, strict: str = "lm_eval") -> Optional[re.Match]:
    return STRICT[strict].search(completion)


def extract_strict(completion: str, strict: str = "lm_eval") -> Optional[str]:
    match = first_answer(completion, strict)
    return normalize_number(match.group(1)) if match else None


def extract_lenient(completion: str) -> Optional[str]:
    """lm-eval's flexible-extract: the last number-like match (its first non-empty group)."""
    matches = FLEXIBLE.findall(completion)
    if not matches:
        return None
    return normalize_number(next(g for g in matches[-1] if g))


def answer_done(completion: str, strict: str = "lm_eval") -> bool:
    """Generation may stop: the answer the extractor will judge is on a finished line."""
    match = first_answer(completion, strict)
    return match is not None and "\n" in completion[match.end():]


def truncate_after_answer(completion: str, strict: str = "lm_eval") -> str:
    """Cut a completion at the end of the line holding the answer that is judged."""
    match = first_answer(completion, strict)
    if not match:
        return completion
    end = completion.find("\n", match.end())
    return completion if end < 0 else completion[:end].rstrip()


def check(completion: str, gold: str, strict: str = "lm_eval") -> dict:
    """Verdict for one completion: the strict (reported) and lenient answers and correctness."""
    gold = normalize_number(gold)
    pred, lenient = extract_strict(completion, strict), extract_lenient(completion)
    return {
        "pred": pred,
        "correct": pred is not None and pred == gold,
        "lenient_pred": lenient,
        "lenient_correct": lenient is not None and lenient == gold,
    }
