"""The paper's questions on this machine, with seeds: does TPT improve the model, does pruning matter,
does Pass@k stay flat while Pass@1 rises, and does more pruned data help more?

    python benchmarks/fidelity.py [--seeds 1 3 5] [--out outputs/fidelity]   # the whole benchmark
    python benchmarks/fidelity.py --seeds 1 --sizes 2k                     # Tables 3/5's cells only
    python benchmarks/fidelity.py --judges                                 # the two judges on real completions
    python benchmarks/fidelity.py --report-only [--seeds 1 3 5]            # read a finished --out

For each seed S (the bundled problem set, the think/eval draws, the data choice and training, all set to
S; odd seeds by default because the bundled generator draws a problem set's test split from seed S + 1,
so seeds 1, 3, 5 give six disjoint random streams and seed 2's train split would be seed 1's test) it
runs the design card's sweep `-m data_size=1k,2k,4k,6k pruning=gt,none` on the embedded default
(the miniature of Table 2/7's shape; its 2k cells are rows t3_2b's and t5_gsm8k_none_2k's miniatures)
for `--rounds` rounds. The 2k cells draw `--samples` eval samples per question (Pass@k for k = 1..16),
the other sizes `--size-samples` (only their Pass@1 is asked). Both token limits are `--max-new-tokens`,
high enough that the share of completions cut at the limit (printed beside every figure) stays small:
a model whose answers are cut can neither show nor refute a plateau.

It answers per seed and pooled over the seeds, from the numbers alone (paired on the same questions):
  (a) round R with pruning beats the base model (round 0);
  (b) pruning beats no pruning at round R;
  (c) after round 1, Pass@1 rises (more than two paired SE) while Pass@k stays flat (within two SE),
      Table 3's plateau (Pass@20 83.0 -> 83.0 -> 83.2 -> 83.2 while Pass@1 goes 52.5 -> 56.0 -> 56.9
      -> 57.6), with the per-question correlation of Pass@1 between round 1 and R that the paired SE
      rests on;
  (d) distinct answers per question fall from round 0 to R;
  (e) at round R, Pass@1 with pruning rises with data size (largest minus smallest size), and the gap
      to no pruning grows with it (the gap at the largest size minus the gap at the smallest).
Pooled: the mean of the seeds' estimates; its SE the larger of the one from the seeds' own paired SEs
(question sampling) and SD / sqrt(seeds) from their spread (which also holds training's randomness and
the problem set's difficulty); the verdict is the pooled estimate against two pooled SE, with how many
seeds said yes on their own.

`--judges` runs the embedded model's eval on `--gsm8k-questions` real GSM8K test questions
(../shared/data/gsm8k) and on the MATH-500 miniature (round 0 and round 1 each) and prints how the
strict rule, the lenient rule and math-verify agree, then `tpt.report --disagreements`.

Figures go to --out: pass_by_size.png (Pass@1 at round R against data size) and, per seed,
pass_at_k.png / completion_lengths.png of the 2k cells. It reports what it measures; the miniature's
task and sizes are tpt/miniature.py's, not tuned here.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TWO_SE = 2.0
PAPER_SIZE = "2k"  # Table 3's and Table 5's data size: (a)-(d) are asked of its cells
SHARED = Path(os.environ.get("TPT_SHARED", ROOT.parent / "shared"))


# ---------------------------------------------------------------------------------------------- running


def seed_overrides(seed: int, args) -> List[str]:
    t = args.max_new_tokens
    return [
        f"rounds={args.rounds}",
        f"task.seed={seed}",
        f"think.seed={seed}",
        f"eval.seed={seed}",
        f"data.seed={seed}",
        f"train.seed={seed}",
        f"think.max_new_tokens={t}",
        f"eval.max_new_tokens={t}",
        f"hydra.sweep.dir={args.out / f'seed_{seed}'}",
    ] + ([f"task.eval_questions={args.eval_questions}"] if args.eval_questions else [])


def launch(overrides: Sequence[str]) -> float:
    cmd = [sys.executable, "launch.py", *overrides]
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        raise SystemExit("fidelity: launch.py stopped with an error (above); rerun the same command to resume it")
    return time.perf_counter() - start


def eval_samples_overrides(n: int) -> List[str]:
    ks = sorted({1, 4, n} & set(range(1, n + 1)))
    return [f"eval.n={n}", f"eval.k=[{','.join(map(str, ks))}]"]


def run_seed(seed: int, args) -> float:
    """The design card's sweep for one seed: the 2k cells with --samples eval samples, the rest with
    --size-samples (two multiruns into one sweep directory)."""
    seconds = 0.0
    groups = [([PAPER_SIZE], args.samples), ([s for s in args.sizes if s != PAPER_SIZE], args.size_samples)]
    for sizes, n in groups:
        if sizes:  # sizes first: a sweep stopped early has both pruning cells of its first sizes
            cmd = ["-m", f"data_size={','.join(sizes)}", "pruning=gt,none", *seed_overrides(seed, args)]
            seconds += launch([*cmd, *eval_samples_overrides(n)])
    return seconds


def run_judges(args) -> float:
    """Round 0 and 1 of the embedded model on real GSM8K test questions (one sample each; one round of 8
    unpruned examples keeps the training small) and on the MATH-500 miniature: real completions for the
    two judges."""
    gsm8k = SHARED / "data" / "gsm8k"
    if not (gsm8k / "test.jsonl").is_file():
        raise SystemExit(f"fidelity: --judges needs GSM8K at {gsm8k} (set TPT_SHARED to the folder holding data/)")
    sweep_dir = f"hydra.sweep.dir={args.out / 'judges'}"
    seconds = launch(
        [
            "-m",
            "task=gsm8k",
            f"task.path={gsm8k}",
            f"task.eval_questions={args.gsm8k_questions}",
            "task.train_questions=16",
            "data.size=8",
            "pruning=none",  # the base model rarely solves GSM8K: train on what it wrote, not on nothing
            "think.n=2",
            "think.max_new_tokens=256",
            "eval.max_new_tokens=256",
            "rounds=1",
            "eval.n=1",
            "eval.k=[1]",
            sweep_dir,
        ]
    )
    # the miniature as it is (4 samples of 128 questions a round), its answers in \boxed{} as MATH's
    seconds += launch(["-m", "task=math500", "miniature=true", "rounds=1", sweep_dir])
    return seconds


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class Estimate:
    """A paired difference (or a level) with its standard error."""

    value: float
    se: float

    def above(self) -> bool:  # more than two SE above zero
        return self.value > TWO_SE * self.se

    def flat(self) -> bool:  # within two SE of zero
        return abs(self.value) <= TWO_SE * self.se

    def __str__(self) -> str:
        return f"{self.value:+.3f} ± {self.se:.3f}"


def paired(a: Dict[str, float], b: Dict[str, float]) -> Estimate:
    from tpt.metrics import paired_difference

    d = paired_difference(a, b)
    return Estimate(d["diff"], d["se"])


def correlation(a: Dict[str, float], b: Dict[str, float]) -> float:
    """Pearson correlation of two per-question values over the shared questions (nan when one is constant)."""
    import numpy as np

    common = sorted(set(a) & set(b))
    x, y = np.array([a[q] for q in common]), np.array([b[q] for q in common])
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


@functools.lru_cache(maxsize=None)
def eval_samples(path: Path) -> Tuple[dict, ...]:
    """A round's eval samples, read once however many per-question figures are taken from them."""
    from tpt.io import read_jsonl

    return tuple(read_jsonl(path))


def per_question(cell, round_idx: int, value: Callable[[List[dict]], float]) -> Dict[str, float]:
    """Each eval question's `value` of its samples in that round (Pass@k: CellResult.per_question)."""
    by_q: Dict[str, List[dict]] = {}
    for r in eval_samples(cell.path / f"round_{round_idx}" / "eval" / "samples.jsonl"):
        by_q.setdefault(r["qid"], []).append(r)
    return {q: float(value(v)) for q, v in by_q.items()}


def distinct_answers(cell, round_idx: int) -> Dict[str, float]:
    """Each eval question's number of distinct final answers (no answer counts as one, as tpt.metrics)."""
    return per_question(cell, round_idx, lambda samples: len({s.get("pred") for s in samples}))


OLD_LIMIT = 48  # the miniature's own token limit (conf/task/arith.yaml), which cut 31% of round 3's answers


def pass1_within(cell, round_idx: int, limit: int = OLD_LIMIT) -> Dict[str, float]:
    """Each eval question's Pass@1 had the token limit been `limit`: a sample counts only if it was right
    within `limit` tokens (its first `limit` tokens are the same draw, and without its end it has no answer)."""

    def within(samples: List[dict]) -> float:
        return sum(bool(s["correct"]) and s["n_tokens"] <= limit for s in samples) / len(samples)

    return per_question(cell, round_idx, within)


def size_label(cell) -> str:
    return f"{int(cell.config['data']['size']) // 1000}k"


def seed_cells(root: Path) -> Dict[Tuple[str, str], object]:
    """(size, pruning) -> the cell, for one seed's sweep directory."""
    from tpt.results import find_cells

    return {(size_label(c), c.config["pruning"]["strategy"]): c for c in find_cells(root)}


@dataclass
class SeedAnswers:
    seed: int
    a: Estimate
    b: Optional[Estimate]
    c_pass1: Optional[Estimate]
    c_passk: Optional[Estimate]
    c_corr: float
    c_corr_old: float  # the same correlation had the limit been OLD_LIMIT tokens
    d: Estimate
    e_rise: Optional[Estimate]
    e_gap: Optional[Estimate]
    k: int


def answer(seed: int, cells: Dict, R: int) -> SeedAnswers:
    from tpt.results import largest_k

    gt, none = cells[(PAPER_SIZE, "gt")], cells.get((PAPER_SIZE, "none"))
    k = largest_k(gt.metrics[0])
    p1 = {r: gt.per_question(r) for r in {0, 1, R}}  # each read once, asked of several times below
    a = paired(p1[R], p1[0])
    b = paired(p1[R], none.per_question(R)) if none else None
    c1 = paired(p1[R], p1[1]) if R >= 2 else None
    ck = paired(gt.per_question(R, k), gt.per_question(1, k)) if R >= 2 else None
    corr = correlation(p1[R], p1[1]) if R >= 2 else float("nan")
    corr_old = correlation(pass1_within(gt, R), pass1_within(gt, 1)) if R >= 2 else float("nan")
    d = paired(distinct_answers(gt, R), distinct_answers(gt, 0))
    sizes = sorted({s for s, _ in cells}, key=lambda s: int(s[:-1]))
    e_rise = e_gap = None
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        e_rise = paired(cells[(hi, "gt")].per_question(R), cells[(lo, "gt")].per_question(R))
        if all((s, "none") in cells for s in (lo, hi)):
            gap = {s: gap_per_question(cells[(s, "gt")], cells[(s, "none")], R) for s in (lo, hi)}
            e_gap = paired(gap[hi], gap[lo])
    return SeedAnswers(seed, a, b, c1, ck, corr, corr_old, d, e_rise, e_gap, k)


def gap_per_question(gt, none, R: int) -> Dict[str, float]:
    g, n = gt.per_question(R), none.per_question(R)
    return {q: g[q] - n[q] for q in set(g) & set(n)}


def pool(estimates: Sequence[Estimate]) -> Tuple[Estimate, float]:
    """The mean of the seeds' estimates and the seeds' spread (SD of the estimates; nan for one seed). Its
    SE is the larger of two: from the seeds' own paired SEs (question sampling within each problem set)
    and from the spread (SD / sqrt(seeds): each seed is a whole replicate, training's randomness and
    the problem set's difficulty included, which the within-seed SEs do not hold)."""
    n = len(estimates)
    mean = sum(e.value for e in estimates) / n
    within = math.sqrt(sum(e.se**2 for e in estimates)) / n
    spread = math.sqrt(sum((e.value - mean) ** 2 for e in estimates) / (n - 1)) if n > 1 else float("nan")
    between = spread / math.sqrt(n) if n > 1 else 0.0
    return Estimate(mean, max(within, between)), spread


def yes(ok: bool) -> str:
    return "yes" if ok else "no"


QUESTIONS = {
    "a": ("(a) round {R} with pruning beats the base model (Pass@1, round {R} - round 0)", "a", Estimate.above),
    "b": ("(b) pruning beats no pruning at round {R} (Pass@1, gt - none)", "b", Estimate.above),
    "c1": ("(c) Pass@1 rises after round 1 (round {R} - round 1)", "c_pass1", Estimate.above),
    "ck": ("(c) Pass@{k} stays flat after round 1 (round {R} - round 1, within two SE)", "c_passk", Estimate.flat),
    "d": ("(d) distinct answers per question fall (round {R} - round 0)", "d", lambda e: -e.value > TWO_SE * e.se),
    "e1": ("(e) Pass@1 with pruning rises with data size (largest - smallest size)", "e_rise", Estimate.above),
    "e2": ("(e) the gap to no pruning grows with data size (gap at largest - at smallest)", "e_gap", Estimate.above),
}


def verdicts(answers: List[SeedAnswers], R: int) -> List[str]:
    lines = []
    for title, attr, test in QUESTIONS.values():
        found = [(s.seed, getattr(s, attr)) for s in answers if getattr(s, attr) is not None]
        if not found:
            continue
        per_seed = ", ".join(f"seed {seed}: {e} {yes(test(e))}" for seed, e in found)
        pooled, spread = pool([e for _, e in found])
        said = sum(test(e) for _, e in found)
        lines.append(
            f"{title.format(R=R, k=answers[0].k)}\n    {per_seed}\n    pooled over {len(found)} seed(s): {pooled}"
            f" (seed-to-seed SD {spread:.3f}) -> {yes(test(pooled))}; {said} of {len(found)} seeds say yes"
        )
    corr = [f"seed {s.seed}: {s.c_corr:+.2f} ({s.c_corr_old:+.2f})" for s in answers if not math.isnan(s.c_corr)]
    if corr:
        lines.append(
            f"    per-question correlation of Pass@1 between round 1 and round {R} (in brackets: had answers been "
            f"cut at {OLD_LIMIT} tokens): " + ", ".join(corr)
        )
    return lines


def seed_table(seed: int, cells: Dict, R: int) -> List[str]:
    """Pass@1, Pass@k, distinct answers and the cut share per cell and round."""
    from tpt.results import largest_k

    lines = [
        f"\nseed {seed}",
        f"{'size':<5}{'prune':<6}{'round':>5}{'Pass@1':>17}{'Pass@k':>22}{'answers/q':>10}{'cut':>7}"
        f"{f'Pass@1 if cut at {OLD_LIMIT}':>22}",
    ]
    for (size, pruning), cell in sorted(cells.items(), key=lambda kv: (int(kv[0][0][:-1]), kv[0][1])):
        for r in sorted(cell.metrics):
            m = cell.metrics[r]
            k = largest_k(m)
            lines.append(
                f"{size:<5}{pruning:<6}{r:>5}{m['pass@1']:>10.3f} ± {m['pass@1_se']:.3f}"
                f"{f'@{k} ':>8}{m[f'pass@{k}']:.3f} ± {m[f'pass@{k}_se']:.3f}"
                f"{m['distinct_answers']:>10.2f}{m['cut_rate']:>7.3f}"
                f"{sum(old := list(pass1_within(cell, r).values())) / len(old):>22.3f}"
            )
    return lines


def max_cut(all_cells: Dict[int, Dict]) -> float:
    return max(m["cut_rate"] for cells in all_cells.values() for c in cells.values() for m in c.metrics.values())


def plot_sizes(all_cells: Dict[int, Dict], R: int, out: Path) -> Optional[Path]:
    """Pass@1 at round R against data size, pruning gt and none: each seed thin, their mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tpt.results import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drew = False
    for pruning, color in (("gt", "tab:blue"), ("none", "tab:orange")):
        curves = []
        for cells in (all_cells[s] for s in sorted(all_cells)):
            pts = sorted(
                (int(s[:-1]), c.metrics[R]["pass@1"], c.metrics[R]["pass@1_se"])
                for (s, p), c in cells.items()
                if p == pruning and R in c.metrics
            )
            if len(pts) < 2:
                continue
            xs, ys, ses = zip(*pts)
            ax.errorbar(xs, ys, yerr=ses, color=color, alpha=0.35, lw=1, capsize=2)
            curves.append((xs, ys))
        if curves and all(c[0] == curves[0][0] for c in curves):
            xs = curves[0][0]
            mean = [sum(c[1][i] for c in curves) / len(curves) for i in range(len(xs))]
            label = f"pruning={pruning}, mean of {len(curves)} seed(s)"
            ax.plot(xs, mean, color=color, lw=2.5, marker="o", label=label)
            drew = True
    if not drew:
        plt.close(fig)
        return None
    ax.set_xlabel("data size (the paper's k examples; x 0.012 in the miniature)")
    ax.set_ylabel(f"Pass@1 at round {R} (± SE per seed)")
    ax.set_xticks([1, 2, 4, 6], ["1k", "2k", "4k", "6k"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = save_figure(fig, out / "pass_by_size.png")
    plt.close(fig)
    return path


def report(args) -> None:
    from tpt.report import plot_reasoning

    R = args.rounds
    all_cells = {}
    for seed in args.seeds:  # only cells that finished round R are read: a partial --out reports what is there
        cells = {key: c for key, c in seed_cells(args.out / f"seed_{seed}").items() if R in c.metrics}
        if (PAPER_SIZE, "gt") in cells:
            all_cells[seed] = cells
        else:
            print(f"seed {seed}: its {PAPER_SIZE} pruning cell has not finished round {R} under {args.out}; left out")
    if not all_cells:
        raise SystemExit(
            f"fidelity: no {PAPER_SIZE} pruning cell finished round {R} under {args.out}/seed_*: "
            "run without --report-only to compute them (or name their --out, --seeds, --rounds)"
        )
    for seed, cells in all_cells.items():
        print("\n".join(seed_table(seed, cells, R)))
    answers = [answer(seed, cells, R) for seed, cells in all_cells.items()]
    print("\n" + "\n".join(verdicts(answers, R)))
    print(
        f"\nlargest share of completions cut at the {args.max_new_tokens}-token limit, any cell and round: "
        f"{max_cut(all_cells):.3f}"
    )
    figures = [p for p in [plot_sizes(all_cells, R, args.out)] if p]
    for seed, cells in all_cells.items():
        paper_cells = [c for (s, _), c in sorted(cells.items()) if s == PAPER_SIZE]
        (args.out / f"seed_{seed}").mkdir(parents=True, exist_ok=True)
        figures += plot_reasoning(paper_cells, args.out / f"seed_{seed}")
    print("wrote " + ", ".join(str(f) for f in figures))


def judges_report(root: Path) -> None:
    """How the strict rule, the lenient rule and math-verify agree on every eval sample under root."""
    from collections import Counter

    from tpt.io import read_jsonl
    from tpt.report import disagreements
    from tpt.results import find_cells

    print(
        f"\n{'task':<10}{'round':>6}{'samples':>9}{'strict':>8}{'lenient':>9}{'m-v':>6}"
        f"{'s=l':>7}{'s=mv':>7}{'l=mv':>7}{'all':>7}{'cut':>7}  strict/lenient/m-v patterns"
    )
    for cell in find_cells(root):
        mini = cell.config.get("miniature_of")
        task = f"{mini}-mini" if mini else cell.config["task"]["name"]
        for r in sorted(cell.metrics):
            path = cell.path / f"round_{r}" / "eval" / "samples.jsonl"
            rows = [s for s in read_jsonl(path) if "second_correct" in s]
            if not rows:
                continue
            v = [(bool(s["correct"]), bool(s["lenient_correct"]), bool(s["second_correct"])) for s in rows]
            n = len(v)

            def agree(i, j, v=v, n=n):
                return sum(x[i] == x[j] for x in v) / n

            patterns = Counter("".join("+" if b else "-" for b in x) for x in v)
            print(
                f"{task:<10}{r:>6}{n:>9}{sum(x[0] for x in v) / n:>8.3f}{sum(x[1] for x in v) / n:>9.3f}"
                f"{sum(x[2] for x in v) / n:>6.3f}{agree(0, 1):>7.3f}{agree(0, 2):>7.3f}{agree(1, 2):>7.3f}"
                f"{sum(len(set(x)) == 1 for x in v) / n:>7.3f}{cell.metrics[r]['cut_rate']:>7.3f}  "
                + " ".join(f"{p}:{c}" for p, c in sorted(patterns.items()))
            )
    print("\n$ python -m tpt.report " + str(root) + " --disagreements 3\n" + disagreements(root, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["1k", "2k", "4k", "6k"], choices=["1k", "2k", "4k", "6k"])
    ap.add_argument("--samples", type=int, default=16, help="eval samples per question in the 2k cells (k = 1..N)")
    ap.add_argument("--size-samples", type=int, default=4, help="eval samples per question in the other sizes")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="think's and eval's token limit")
    ap.add_argument("--eval-questions", type=int, default=None, help="default: the miniature's 128")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "fidelity")
    ap.add_argument("--judges", action="store_true", help="instead: the two judges on real completions")
    ap.add_argument("--gsm8k-questions", type=int, default=300)
    ap.add_argument("--report-only", action="store_true", help="read a finished --out without running")
    args = ap.parse_args()
    if PAPER_SIZE not in args.sizes:
        ap.error(f"--sizes must include {PAPER_SIZE}: questions (a)-(d) are asked of the paper's data size")
    args.out = args.out.resolve()
    if args.judges:
        seconds = None if args.report_only else run_judges(args)
        judges_report(args.out / "judges")
    else:
        seconds = None
        if not args.report_only:
            seconds = 0.0
            for seed in args.seeds:
                took = run_seed(seed, args)
                print(f"seed {seed}: {took / 60:.1f} min", flush=True)
                seconds += took
        report(args)
    if seconds is not None:
        print(f"\nran in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
