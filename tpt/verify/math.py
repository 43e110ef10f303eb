"""Math answers: where a completion's answer is, when it is finished, and whether it is right.

A math task's answer rule (`task.answer`, `RULES`) says where the judged answer is:

- `hash` (GSM8K, the default): lm-evaluation-harness's `gsm8k` task, below;
- `boxed`: the last `\\boxed{...}`, judged as a number; lenient: the last number;
- `last_number`: the last number of the completion (lm-eval's flexible-extract), judged as a number;
- `math`: the last `\\boxed{...}`, judged by math-verify (symbolic equivalence, tpt.verify.symbolic);
  the second metric beside it is a normalised string match of the boxed answer with the gold.

The `hash` rule:
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
from typing import Callable, Optional

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
    return match is not None and "\n" in completion[match.end() :]


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


# --- the other answer rules ---------------------------------------------------------------------

RULES = ("hash", "boxed", "last_number", "math")  # task.answer
# What the prompt asks for when task.instruction is null: each rule's standard instruction.
INSTRUCTIONS = {
    "hash": "Solve the problem step by step. Write each step on its own line, "
    "then end with a final line of the form '#### <number>'.",
    "boxed": "Solve the problem step by step, then write the final answer as a number in \\boxed{}.",
    "last_number": "Solve the problem step by step, then end with the final answer as a number.",
    "math": "Solve the problem step by step, then write the final answer in \\boxed{}.",
}


def answer_id(rule: str, strict: str = "lm_eval") -> str:
    """One name for what decides a math completion's format and verdict: the `hash` rule's variant
    (task.strict_match), else the rule itself."""
    return strict if rule == "hash" else rule


_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


def boxed_spans(text: str) -> list:
    """(start, end, content) of every complete `\\boxed{...}` (braces balanced), in order."""
    spans = []
    for m in _BOX.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append((m.start(), i, text[m.end() : i - 1]))
    return spans


def last_boxed(text: str) -> Optional[str]:
    spans = boxed_spans(text)
    return spans[-1][2].strip() if spans else None


def boxed_done(completion: str) -> bool:
    spans = boxed_spans(completion)
    return bool(spans) and "\n" in completion[spans[0][1] :]


def truncate_after_boxed(completion: str) -> str:
    """Cut at the end of the line holding the first complete `\\boxed{}` (the judged one is the last
    box of what is kept, so a line of several boxes is judged by its last)."""
    spans = boxed_spans(completion)
    if not spans:
        return completion
    end = completion.find("\n", spans[0][1])
    return completion if end < 0 else completion[:end].rstrip()


_LATEX_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s|\^\{?\\circ\}?|\\%|%")


def normalize_latex(text: str) -> str:
    """The light normalisation of the `math` rule's string match: spacing, `\\left`/`\\right`, `$`,
    degrees and percent signs dropped, `\\dfrac`/`\\tfrac` as `\\frac`, `\\text{...}` unwrapped, a
    trailing `.` dropped; a plain number in its canonical form."""
    s = re.sub(r"\\[dt]frac", r"\\frac", text)
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = _LATEX_NOISE.sub("", s).rstrip(".")
    return normalize_number(s) or s


def _numeric_verdict(pred: Optional[str], lenient: Optional[str], gold: str) -> dict:
    gold = normalize_number(gold)
    return {
        "pred": pred,
        "correct": pred is not None and pred == gold,
        "lenient_pred": lenient,
        "lenient_correct": lenient is not None and lenient == gold,
    }


def check_rule(
    completion: str, gold: str, answer: str, symbolic: Optional[Callable[[str, str], Optional[bool]]] = None
) -> dict:
    """Verdict for one completion under an answer id (`answer_id`); the `math` rule needs `symbolic`
    (gold, answer -> equal, None when it timed out: a symbolic judge, tpt.verify.symbolic)."""
    if answer in STRICT:
        return check(completion, gold, answer)
    if answer == "boxed":
        box = last_boxed(completion)
        return _numeric_verdict(normalize_number(box) if box is not None else None, extract_lenient(completion), gold)
    if answer == "last_number":
        last = extract_lenient(completion)
        return _numeric_verdict(last, last, gold)
    if answer == "math":
        box = last_boxed(completion)
        equal = symbolic(gold, box) if box is not None else False
        return {
            "pred": box,
            "correct": bool(equal),
            "timeout": equal is None,
            "lenient_pred": box,
            "lenient_correct": box is not None and normalize_latex(box) == normalize_latex(gold),
        }
    raise ValueError(f"unknown answer rule {answer!r}")


def rule_done(answer: str) -> Callable[[str], bool]:
    if answer in STRICT:
        return lambda text: answer_done(text, answer)
    if answer in ("boxed", "math"):
        return boxed_done
    return lambda text: False  # last_number: the model decides when it is finished


def rule_truncate(answer: str) -> Callable[[str], str]:
    if answer in STRICT:
        return lambda text: truncate_after_answer(text, answer)
    if answer in ("boxed", "math"):
        return truncate_after_boxed
    return lambda text: text


def gold_of(text: str, rule: str) -> Optional[str]:
    """The gold answer in a reference text under a rule (a bare answer is its own gold): a number
    for the numeric rules, LaTeX for `math`; None if there is none."""
    text = text.strip()
    if rule == "hash":
        return gold_answer(text) if "####" in text else normalize_number(text)
    if rule == "boxed":
        box = last_boxed(text)
        return normalize_number(box if box is not None else text)
    if rule == "last_number":
        return normalize_number(text) or extract_lenient(text)
    box = last_boxed(text)  # math
    answer = box if box is not None else text.strip("$ ")
    return answer or None


def has_answer_line(text: str, rule: str) -> bool:
    """Whether a reference solution states its answer the way the rule reads it."""
    if rule == "hash":
        return "####" in text
    if rule in ("boxed", "math"):
        return last_boxed(text) is not None
    return extract_lenient(text) is not None


def answer_line(gold: str, rule: str) -> str:
    """How a reference solution states a bare gold answer under a rule (few-shot turns, human data)."""
    if rule == "hash":
        return f"#### {gold}"
    if rule in ("boxed", "math"):
        return f"The answer is $\\boxed{{{gold}}}$."
    return f"The answer is {gold}."
