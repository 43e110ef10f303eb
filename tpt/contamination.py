"""Does what a cell trains on overlap its eval questions? Word n-gram overlap, as the decontamination
steps of GPT-3 (13-grams) and open-r1 (8-grams, its default) check it.

Text is normalised as open-r1 does: lower case, every character that is not a letter or a digit
becomes a space, then split into words. A train item (its question, and a human solution when the cell
trains on human data) overlaps an eval question when they share at least one n-gram of `n` words.
Checked twice: the questions before any compute (`check`, the run's contamination.json), and each
round's training solutions once pruning chose them (`check_solutions`: a teacher's or the model's own
solutions are only known then).
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


def overlaps(train: Iterable[Tuple[str, str]], evals: Sequence[Tuple[str, str]], n: int) -> Dict[str, List[str]]:
    """{train id: the eval ids it shares an n-gram with}, for the train items (id, text) that share any."""
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


def check(train_problems, eval_problems, n: int, with_solutions: bool) -> Dict:
    """contamination.json of a cell: n, the normalisation, what was compared, and the overlaps."""
    items = [(p.id, p.question) for p in train_problems]
    if with_solutions:
        items += [(p.id, p.solution) for p in train_problems if p.solution]
    found = overlaps(items, [(p.id, p.question) for p in eval_problems], n)
    return _report(
        found,
        n,
        "train questions and their human solutions" if with_solutions else "train questions",
        train_questions=len(train_problems),
        eval_questions=len(eval_problems),
        overlapping_train=len(found),
    )


def check_solutions(records: Sequence[dict], eval_problems, n: int) -> Dict:
    """A round's contamination.json (round_<i>/prune/): the solutions it trains on (self-generated,
    a teacher's or human, `origin`) against the eval questions; a solution that restates an eval
    question is leakage a question-only check cannot see."""
    items = [(f"{r['qid']}/{r.get('origin', 'self')}", r["completion"]) for r in records]
    found = overlaps(items, [(p.id, p.question) for p in eval_problems], n)
    origins = sorted({r.get("origin", "self") for r in records})
    return _report(
        found, n, f"training solutions ({', '.join(origins)})", examples=len(records), overlapping_examples=len(found)
    )


def _report(found: Dict[str, List[str]], n: int, compared: str, **counts) -> Dict:
    """A contamination.json: n, the normalisation, what was compared, its counts, and the overlaps."""
    eval_ids = sorted({e for ids in found.values() for e in ids})
    return {
        "ngram": n,
        "normalisation": NORMALISATION,
        "compared": compared,
        **counts,
        "overlapping_eval": len(eval_ids),
        "overlapping_eval_ids": eval_ids,
        "pairs": {t: found[t] for t in sorted(found)},
    }
