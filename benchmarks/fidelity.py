"""The paper's question on this machine: does TPT improve the model, and does pruning matter?

    python benchmarks/fidelity.py [--rounds 3 --eval-questions 256] [--out outputs/fidelity]

Runs the CPU miniatures of Table 3 (row t3_2b: ground-truth pruning) and Table 5 (row
t5_gsm8k_none_2k: no pruning) together, as one multirun of `launch.py`, for `--rounds` rounds on
`--eval-questions` eval questions, then prints Pass@1 ± SE and Pass@k per round per cell and
answers, from the numbers alone:
  (a) does round R with pruning beat the baseline by more than two standard errors (paired, same
      questions)?
  (b) does pruning beat no pruning at round R (paired difference and its SE)?
  (c) does Pass@k stay roughly flat (within two SE of the baseline) while Pass@1 rises?
  (d) do distinct answers per question fall?
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
    cmd = [sys.executable, "launch.py", "-m", "+experiment=table3", "miniature=true", f"row={','.join(CELLS.values())}",
           f"rounds={args.rounds}", f"task.eval_questions={args.eval_questions}", f"hydra.sweep.dir={args.out}"]
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
    ap.add_argument("--report-only", action="store_true", help="read a finished --out without running")
    args = ap.parse_args()
    seconds = None if args.report_only else run(args)

    from tpt.metrics import paired_difference
    from tpt.results import find_cells, largest_k

    found = {c.config.get("paper_row"): c for c in find_cells(args.out)}
    cells = {name: found[row] for name, row in CELLS.items()}
    k = largest_k(cells["gt"].metrics[0])
    print(f"\n{'cell':<6}{'round':>6}{'Pass@1':>17}{f'Pass@{k}':>17}{'answers/q':>11}")
    for name, cell in cells.items():
        for r in sorted(cell.metrics):
            m = cell.metrics[r]
            print(f"{name:<6}{r:>6}{m['pass@1']:>10.3f} ± {m['pass@1_se']:.3f}{m[f'pass@{k}']:>10.3f} ± "
                  f"{m[f'pass@{k}_se']:.3f}{m['distinct_answers']:>11.2f}")

    R, gt, none = args.rounds, cells["gt"], cells["none"]

    def paired(a, ra, b, rb, kk=1):
        d = paired_difference(a.per_question(ra, kk), b.per_question(rb, kk))
        return d["diff"], d["se"]

    d_a, se_a = paired(gt, R, gt, 0)
    d_b, se_b = paired(gt, R, none, R)
    d_k, se_k = paired(gt, R, gt, 0, k)
    ans0, ansR = gt.metrics[0]["distinct_answers"], gt.metrics[R]["distinct_answers"]
    print(f"\n(a) round {R} with pruning vs baseline: Pass@1 {d_a:+.3f} ± {se_a:.3f} -> "
          f"{verdict(d_a > TWO_SE * se_a)} (more than two SE)")
    print(f"(b) pruning vs no pruning at round {R}: Pass@1 {d_b:+.3f} ± {se_b:.3f} -> "
          f"{verdict(d_b > TWO_SE * se_b)} (more than two SE); {verdict(d_b > 0)} (point estimate)")
    print(f"(c) Pass@{k} round {R} vs baseline: {d_k:+.3f} ± {se_k:.3f} -> flat within two SE: "
          f"{verdict(abs(d_k) <= TWO_SE * se_k)}; Pass@1 rose: {verdict(d_a > TWO_SE * se_a)}")
    print(f"(d) distinct answers per question: {ans0:.2f} at round 0, {ansR:.2f} at round {R} -> fell: "
          f"{verdict(ansR < ans0)}")
    if seconds is not None:
        print(f"\n{len(cells)} cells x {R} rounds on {args.eval_questions} eval questions: {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
