"""tpt's train/eval overlap on GSM8K beside two independent implementations run on the same questions:
lm-eval's janitor (lm_eval.decontamination.janitor, a dev dependency) and, if its script is given,
open-r1's scripts/decontaminate.py (not a dependency: fetch the repository and pass the file).

    python benchmarks/contamination_reference.py --gsm8k ../shared/data/gsm8k [--open-r1 decontaminate.py]

Prints, per n, how many train questions each flags against the cell's eval questions (the seeded 500)
and how the sets relate. Results: docs/configuration.md, "Contamination".
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from tpt import contamination
from tpt.compose import compose
from tpt.tasks import load_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gsm8k", type=Path, required=True, help="folder with train.jsonl and test.jsonl")
    parser.add_argument("--open-r1", type=Path, help="open-r1's scripts/decontaminate.py")
    parser.add_argument("--n", type=int, nargs="+", default=[8, 13])
    args = parser.parse_args()
    from lm_eval.decontamination.janitor import Janitor, word_ngrams

    openr1 = None
    if args.open_r1:
        spec = importlib.util.spec_from_file_location("openr1_decontaminate", args.open_r1)
        openr1 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(openr1)
    data = load_task(compose(["task=gsm8k", f"task.path={args.gsm8k}"]).task)
    print(f"GSM8K: {len(data.train)} train questions against the cell's {len(data.eval)} eval questions")
    for n in args.n:
        ours = set(contamination.check(data.train, data.eval, n, with_solutions=False)["pairs"])
        janitor = Janitor(ngram_n=n)
        dirt = {g for p in data.eval for g in word_ngrams(janitor.normalize_string(p.question), n)}
        lm_eval = {p.id for p in data.train if dirt & set(word_ngrams(janitor.normalize_string(p.question), n))}
        line = f"n={n}: tpt {len(ours)}, lm-eval janitor {len(lm_eval)} (all in tpt's: {lm_eval <= ours})"
        if openr1 is not None:
            lookup = openr1.build_ngram_lookup([p.question for p in data.eval], ngram_size=n)
            r1 = {p.id for p in data.train if any(g in lookup for g in openr1.build_ngram_single(p.question, n))}
            line += f", open-r1 {len(r1)} (all in tpt's: {r1 <= ours})"
        print(line)


if __name__ == "__main__":
    main()
