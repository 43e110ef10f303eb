"""The paper's question on this machine: does TPT improve the model, and does pruning matter?

    python benchmarks/fidelity.py [--rounds 3 --eval-questions 256] [--out outputs/fidelity]
    python benchmarks/fidelity.py --samples 16 --cells gt --eval-questions 128 --out outputs/fidelity_k16

Runs the CPU miniatures of Table 3 (row t3_2b: ground-truth pruning) and Table 5 (row
t5_gsm8k_none_2k: no pruning) together, as one multirun of `launch.py`, for `--rounds` rounds on
`--eval-questions` eval questions, then prints Pass@1 ± SE and Pass@k per round per cell and
answers, from the numbers alone:
  (a) does round R with pruning beat the baseline by more than two standard errors (paired, same
      questions)?
  (b) does pruning beat no pruning at round R (paired difference and its SE)?
  (c) does Pass@k stay roughly flat (within two SE of the baseline) while Pass@1 rises?
  (d) do distinct answers per question fall?
With `--samples N` (eval samples per question; k goes 1..N) it also answers Table 3's plateau:
  (e) after round 1, does Pass@N stay flat (within two paired SE of round 1) while Pass@1 keeps
      rising (by more than two paired SE)? The paper: Pass@20 83.0 -> 83.0 -> 83.2 -> 83.2 while
      Pass@1 52.5 -> 56.0 -> 56.9 -> 57.6 (Gemma-2-2B, rounds 1-4).
and draws Pass@k against k per round (pass_at_k.png, with completion_lengths.png) in --out.
It reports what it measures; the miniature's task and sizes are tpt/miniature.py's, not tuned here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CELLS = {"gt": "t3_2b", "none": "t5_gsm8k_none_2k"}
TWO_SE = 2.0


def run(args) -> float:
    rows = ",".join(CELLS[c] for c in args.cells)
    cmd = [
        sys.executable,
        "launch.py",
        "-m",
        "+experiment=table3",
        "miniature=true",
        f"row={rows}",
        f"rounds={args.rounds}",
        f"task.eval_questions={args.eval_questions}",
        f"hydra.sweep.dir={args.out}",
    ]
    if args.samples:
        ks = sorted({1, 4, args.samples} & set(range(1, args.samples + 1)))
        cmd += [f"eval.n={args.samples}", f"eval.k=[{','.join(map(str, ks))}]"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "yes" if ok else "no"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval-questions", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "fidelity")
    ap.add_argument(
        "--samples",
        type=int,
        default=None,
        help="eval samples per question (eval.n; default: the miniature's 4); adds the plateau check (e)",
    )
    ap.add_argument(
        "--cells",
        nargs="+",
        choices=sorted(CELLS),
        default=sorted(CELLS, reverse=True),
        help="which cells to run (gt: pruning, none: no pruning); (b) needs both",
    )
    ap.add_argument("--report-only", action="store_true", help="read a finished --out without running")
    args = ap.parse_args()
    seconds = None if args.report_only else run(args)

    from tpt.metrics import paired_difference
    from tpt.report import plot_reasoning
    from tpt.results import find_cells, largest_k

    found = {c.config.get("paper_row"): c for c in find_cells(args.out)}
    cells = {name: found[row] for name, row in CELLS.items() if row in found}
    k = largest_k(cells["gt"].metrics[0])
    print(f"\n{'cell':<6}{'round':>6}{'Pass@1':>17}{f'Pass@{k}':>17}{'answers/q':>11}")
    for name, cell in cells.items():
        for r in sorted(cell.metrics):
            m = cell.metrics[r]
            print(
                f"{name:<6}{r:>6}{m['pass@1']:>10.3f} ± {m['pass@1_se']:.3f}{m[f'pass@{k}']:>10.3f} ± "
                f"{m[f'pass@{k}_se']:.3f}{m['distinct_answers']:>11.2f}"
            )

    R, gt = args.rounds, cells["gt"]

    def paired(a, ra, b, rb, kk=1):
        d = paired_difference(a.per_question(ra, kk), b.per_question(rb, kk))
        return d["diff"], d["se"]

    d_a, se_a = paired(gt, R, gt, 0)
    d_k, se_k = paired(gt, R, gt, 0, k)
    ans0, ansR = gt.metrics[0]["distinct_answers"], gt.metrics[R]["distinct_answers"]
    print(
        f"\n(a) round {R} with pruning vs baseline: Pass@1 {d_a:+.3f} ± {se_a:.3f} -> "
        f"{verdict(d_a > TWO_SE * se_a)} (more than two SE)"
    )
    if "none" in cells:
        d_b, se_b = paired(gt, R, cells["none"], R)
        print(
            f"(b) pruning vs no pruning at round {R}: Pass@1 {d_b:+.3f} ± {se_b:.3f} -> "
            f"{verdict(d_b > TWO_SE * se_b)} (more than two SE); {verdict(d_b > 0)} (point estimate)"
        )
    print(
        f"(c) Pass@{k} round {R} vs baseline: {d_k:+.3f} ± {se_k:.3f} -> flat within two SE: "
        f"{verdict(abs(d_k) <= TWO_SE * se_k)}; Pass@1 rose: {verdict(d_a > TWO_SE * se_a)}"
    )
    print(
        f"(d) distinct answers per question: {ans0:.2f} at round 0, {ansR:.2f} at round {R} -> fell: "
        f"{verdict(ansR < ans0)}"
    )
    if args.samples and R >= 2:
        plateau(gt, R, k, paired)
    figures = plot_reasoning(list(cells.values()), args.out)
    print("\nwrote " + ", ".join(str(f) for f in figures))
    if seconds is not None:
        print(f"\n{len(cells)} cells x {R} rounds on {args.eval_questions} eval questions: {seconds / 60:.1f} min")


def plateau(gt, R: int, k: int, paired) -> None:
    """(e): Table 3's shape, Pass@k flat after round 1 while Pass@1 still rises; with the curves."""
    print(f"\nPass@j for j = 1..{k}, pruning cell (the curve pass_at_k.png draws):")
    for r in sorted(gt.metrics):
        curve = gt.metrics[r].get("pass_curve", [])
        print(f"  round {r}: " + " ".join(f"{v:.3f}" for v in curve))
    d1, se1 = paired(gt, R, gt, 1)
    dk, sek = paired(gt, R, gt, 1, k)
    rising, flat = d1 > TWO_SE * se1, abs(dk) <= TWO_SE * sek
    print(
        f"(e) from round 1 to round {R}: Pass@1 {d1:+.3f} ± {se1:.3f} (rose by more than two SE: "
        f"{verdict(rising)}); Pass@{k} {dk:+.3f} ± {sek:.3f} (flat within two SE: {verdict(flat)}) -> "
        f"Table 3's plateau: {verdict(rising and flat)}"
    )


if __name__ == "__main__":
    main()
