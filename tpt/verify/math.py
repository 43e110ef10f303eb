"""GSM8K-style answer checking, as in the paper: strict `#### N`, plus a lenient last-number check.

Both sides are normalised the same way: thousands separators, a `$` sign and a trailing period
are dropped (14 GSM8K gold answers carry separators), then compared as decimals so "5.0" == "5".
The strict check is the reported metric; the lenient one is reported beside it, never instead.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Optional

# A number as written in answers: optional sign and $, digits with optional thousands commas,
# optional decimals.
_NUMBER = r"[-+]?\$?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_ANSWER_LINE = re.compile(r"####[ \t]*([^\n]*)")
_ANY_NUMBER = re.compile(_NUMBER)
# An answer line is complete once a newline follows a number after `####`.
ANSWER_LINE_DONE = re.compile(r"####[ \t]*" + _NUMBER + r"[ \t.]*\n")


def normalize_number(text: str) -> Optional[str]:
    """Canonical form of a number written as text, or None if the text is not exactly a number."""
    s = text.strip()
    s = s.rstrip(".").strip()  # "72." -> "72"
    s = s.replace(",", "").replace("$", "").replace(" ", "")
    if not s or not re.fullmatch(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)", s):
        return None
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    text = format(value.normalize(), "f")  # "72.0" -> "72", "1E+2" -> "100"
    return "0" if text in ("-0", "+0") else text


def gold_answer(solution: str) -> Optional[str]:
    """The normalised number after the last `####` of a reference solution, or None."""
    matches = _ANSWER_LINE.findall(solution)
    return normalize_number(matches[-1]) if matches else None


def extract_strict(completion: str) -> Optional[str]:
    """The answer of a completion in the required format: the first `#### N` line, N a number."""
    match = _ANSWER_LINE.search(completion)
    return normalize_number(match.group(1)) if match else None


def extract_lenient(completion: str) -> Optional[str]:
    """The last number anywhere in the completion."""
    numbers = _ANY_NUMBER.findall(completion)
    for raw in reversed(numbers):
        value = normalize_number(raw)
        if value is not None:
            return value
    return None


def truncate_after_answer(completion: str) -> str:
    """Cut a completion at the end of its first answer line (generation may run a few tokens past)."""
    match = _ANSWER_LINE.search(completion)
    if not match:
        return completion
    return completion[: match.end()].rstrip()


def check(completion: str, gold: str) -> dict:
    """Verdict for one completion: the strict (reported) and lenient answers and correctness."""
    strict = extract_strict(completion)
    lenient = extract_lenient(completion)
    return {
        "pred": strict,
        "correct": strict is not None and strict == gold,
        "lenient_pred": lenient,
        "lenient_correct": lenient is not None and lenient == gold,
    }
