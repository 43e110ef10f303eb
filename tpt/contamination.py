"""Does what a cell trains on overlap its eval questions? Two rules (`task.contamination`):

- `ngram` (data sets): word n-gram overlap (`task.contamination_ngram`, 8), as the decontamination
  steps of GPT-3 (13-grams) and open-r1 (8-grams, its default) check it. Text is lower-cased, every
  character that is not a letter or a digit becomes a space, then it is split into words. open-r1
  splits on whitespace only (punctuation stays on its word) and lm-eval's janitor deletes punctuation
  (`2/5` becomes `25`), so both find a subset of these overlaps: on GSM8K 18 and 23 of its 25
  (docs/configuration.md, tests/test_contamination.py).
- `exact` (problems generated from templates, the bundled tasks): every question of such a task
  shares the template's phrases, so n-grams match everywhere by construction; what leaks an eval
  question is the question itself, so a train item overlaps when its normalised text contains a whole
  eval question.

A train item (its question, and a human solution when the cell trains on human data) is checked
before any compute (`check`, the run's contamination.json), and each round's training solutions once
pruning chose them (`check_solutions`: a teacher's or the model's own solutions are only known then).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Sequence, Set, Tuple

NORMALISATION = "lower case; characters other than letters and digits become spaces; split on whitespace"
_NON_WORD = re.compile(r"[^0-9a-z]+")


def words(text: str) -> List[str]:
    return _NON_WORD.sub(" ", text.lower()).split()


def ngrams(text: str, n: int) -> Set[Tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


RULES = ("ngram", "exact")


def overlaps(
    train: Iterable[Tuple[str, str]], evals: Sequence[Tuple[str, str]], n: int, rule: str = "ngram"
) -> Dict[str, List[str]]:
    """{train id: the eval ids it overlaps}, for the train items (id, text) that overlap any: sharing an
    n-gram, or with rule `exact` containing the whole eval question."""
    if rule == "exact":
        return contained(train, evals)
    owners: Dict[Tuple[str, ...], List[str]] = {}
    for eval_id, text in evals:
        for gram in ngrams(text, n):
            owners.setdefault(gram, []).append(eval_id)
    found: Dict[str, List[str]] = {}
    for train_id, text in train:
        hit = {e for gram in ngrams(text, n) for e in owners.get(gram, ())}
        if hit:
            found[train_id] = sorted(set(found.get(train_id, [])) | hit)
    return found


def contained(train: Iterable[Tuple[str, str]], evals: Sequence[Tuple[str, str]]) -> Dict[str, List[str]]:
    """{train id: the eval ids whose whole normalised question its normalised text contains}."""
    questions = [(eval_id, f" {' '.join(words(text))} ") for eval_id, text in evals]
    found: Dict[str, List[str]] = {}
    for train_id, text in train:
        padded = f" {' '.join(words(text))} "
        hit = {e for e, q in questions if q.strip() and q in padded}
        if hit:
            found[train_id] = sorted(set(found.get(train_id, [])) | hit)
    return found


def check(train_problems, eval_problems, n: int, with_solutions: bool, rule: str = "ngram") -> Dict:
    """contamination.json of a cell: the rule, the normalisation, what was compared, and the overlaps."""
    items = [(p.id, p.question) for p in train_problems]
    if with_solutions:
        items += [(p.id, p.solution) for p in train_problems if p.solution]
    found = overlaps(items, [(p.id, p.question) for p in eval_problems], n, rule)
    return _report(
        found,
        n,
        rule,
        "train questions and their human solutions" if with_solutions else "train questions",
        train_questions=len(train_problems),
        eval_questions=len(eval_problems),
        overlapping_train=len(found),
    )


def check_solutions(records: Sequence[dict], eval_problems, n: int, rule: str = "ngram") -> Dict:
    """A round's contamination.json (round_<i>/prune/): the solutions it trains on (self-generated,
    a teacher's or human, `origin`) against the eval questions; a solution that restates an eval
    question is leakage a question-only check cannot see."""
    items = [(f"{r['qid']}/{r.get('origin', 'self')}", r["completion"]) for r in records]
    found = overlaps(items, [(p.id, p.question) for p in eval_problems], n, rule)
    origins = sorted({r.get("origin", "self") for r in records})
    return _report(
        found,
        n,
        rule,
        f"training solutions ({', '.join(origins)})",
        examples=len(records),
        overlapping_examples=len(found),
    )


def describe(rule: str, n: int) -> str:
    """How an overlap was found, for the screen: `a 8-gram` or `a whole question`."""
    return "a whole eval question" if rule == "exact" else f"a {n}-gram"


def _report(found: Dict[str, List[str]], n: int, rule: str, compared: str, **counts) -> Dict:
    """A contamination.json: the rule (and n), the normalisation, what was compared, its counts, and the
    overlaps."""
    eval_ids = sorted({e for ids in found.values() for e in ids})
    return {
        "rule": rule,
        "ngram": n if rule == "ngram" else None,
        "normalisation": NORMALISATION,
        "compared": compared,
        **counts,
        "overlapping_eval": len(eval_ids),
        "overlapping_eval_ids": eval_ids,
        "pairs": {t: found[t] for t in sorted(found)},
    }
