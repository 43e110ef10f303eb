"""A real run directory, read back: one row of the paper's Table 6 run locally as its CPU miniature
(`python launch.py -m +experiment=table6 row=t6_llama1b miniature=true`, made small) on the real
embedded SmolLM2-135M and the backend the README's command gets (backend=auto: vLLM's CPU build where
installed, as in CI); then its metrics recomputed from its samples by brute force, `tpt.report` and
`tpt.report --paper` on it, and the same command again finding every stage finished."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT
from tpt.report import main as report_main

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.timeout(900)]  # the first test runs the row

# Smaller than the miniature (seconds on the embedded model): 4 eval questions with 2 samples each, 8 train
# questions with 4 (enough for some correct ones to train on).
SMALL = [
    "cache=off",
    "rounds=1",
    "task.eval_questions=4",
    "task.train_questions=8",
    "think.n=4",
    "eval.n=2",
    "eval.k=[1,2]",
    "data.scale=0.003",
]  # the row's 2k examples -> 6 of the 8 questions


def launch_row(sweep: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "launch.py",
            "-m",
            "+experiment=table6",
            "row=t6_llama1b",
            "miniature=true",
            *SMALL,
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def miniature_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("table6_cpu")
    run = launch_row(sweep)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "round | Pass@1 | Pass@2 | Correct@2" in run.stdout  # the table a run prints
    assert "leaked" not in run.stderr  # vLLM's processes leave nothing for the resource tracker to clean up
    [cell] = [p for p in sweep.iterdir() if (p / "metrics.jsonl").is_file()]
    return sweep, cell


def metrics(cell: Path):
    return [json.loads(line) for line in (cell / "metrics.jsonl").read_text().splitlines()]


def test_the_row_ran_as_its_miniature_locally(miniature_sweep):
    _, cell = miniature_sweep
    pinned = OmegaConf.load(cell / "run_config.yaml")
    assert (pinned.paper_row, pinned.model.name, pinned.task.name) == ("t6_llama1b", "smollm2_135m", "arith")
    assert pinned.data.size == 2000 and pinned.data.scale < 1  # the paper's size, scaled for the CPU
    rows = metrics(cell)
    assert [m["round"] for m in rows] == [0, 1] and rows[1]["data_size"] > 0 and rows[1]["train_loss"] > 0
    assert rows[0]["format_rate"] > 0  # the real model writes '#### N'
    assert (cell / "round_1" / "train" / "model" / "model.safetensors").is_file()
    assert "name: vllm" in (cell / "run_config.yaml").read_text() or os.environ.get("CI") != "true"


def brute_force_pass_at_k(verdicts, k):
    """Share of the k-subsets of a question's samples holding a correct one, by enumeration."""
    subsets = list(itertools.combinations(verdicts, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_metrics_are_what_the_samples_say(miniature_sweep):
    """Pass@k, its standard error and Correct@k, recomputed from eval/samples.jsonl without tpt.metrics."""
    _, cell = miniature_sweep
    for row in metrics(cell):
        by_question = {}
        for sample in map(json.loads, (cell / f"round_{row['round']}" / "eval" / "samples.jsonl").open()):
            by_question.setdefault(sample["qid"], []).append(bool(sample["correct"]))
        assert row["questions"] == len(by_question) == 4 and row["samples"] == 8
        for k in (1, 2):
            per_question = [brute_force_pass_at_k(v, k) for v in by_question.values()]
            mean = sum(per_question) / len(per_question)
            se = statistics.stdev(per_question) / math.sqrt(len(per_question))
            assert row[f"pass@{k}"] == pytest.approx(mean) and row[f"pass@{k}_se"] == pytest.approx(se)
            assert row[f"correct@{k}"] == pytest.approx(mean * len(per_question))


def test_the_second_judge_is_what_math_verify_says_of_each_sample(miniature_sweep, capsys):
    """Every eval sample judged again by math-verify itself (its own parse and verify, not tpt's
    worker), the round's agreement figures recomputed from them, and `--disagreements` on the run."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    sweep, cell = miniature_sweep
    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    for row in metrics(cell):
        samples = [json.loads(line) for line in (cell / f"round_{row['round']}" / "eval" / "samples.jsonl").open()]
        for s in samples:
            gold = parse(f"\\boxed{{{s['answer']}}}", [LatexExtractionConfig()])
            assert s["second_correct"] == verify(gold, parse(s["completion"], config)), s
        agree = sum(bool(s["correct"]) == bool(s["second_correct"]) for s in samples) / len(samples)
        assert row["judge_agreement"] == pytest.approx(agree)
        assert row["judge_rule_only"] == sum(s["correct"] and not s["second_correct"] for s in samples)
        assert row["judge_second_only"] == sum(s["second_correct"] and not s["correct"] for s in samples)
    report_main([str(sweep), "--disagreements", "2"])
    out = capsys.readouterr().out
    for row in metrics(cell):
        assert (
            f"round {row['round']}: 8 samples, {row['judge_rule_only']} where the rule says right, math-verify "
            f"wrong, {row['judge_second_only']} where math-verify says right"
        ) in out


def test_the_report_reads_the_run(miniature_sweep, capsys):
    sweep, cell = miniature_sweep
    report_main([str(sweep)])
    rows = {int(r["round"]): r for r in csv.DictReader((sweep / "report.csv").open())}
    for m in metrics(cell):
        r = rows[m["round"]]
        assert r["status"] == "done" and float(r["pass@1"]) == pytest.approx(m["pass@1"])
        assert float(r["pass@k"]) == pytest.approx(m["pass@2"]) and r["k"] == "2"
    assert (sweep / "pass_by_round.png").is_file()


def test_the_paper_report_sets_the_run_beside_table6(miniature_sweep, capsys):
    sweep, cell = miniature_sweep
    report_main([str(sweep), "--paper", "table6"])
    rows = {(r["paper_row"], r["round"]): r for r in csv.DictReader((sweep / "paper_table6.csv").open())}
    final = metrics(cell)[-1]
    ours = rows[("t6_llama1b", "1")]
    assert ours["status"] == "done" and float(ours["pass@1_pct"]) == pytest.approx(100 * final["pass@1"], abs=0.01)
    assert rows[("t6_llama70b", "1")]["status"] == "missing"  # not run here
    assert (sweep / "paper_table6.png").is_file()
    # A miniature compares shapes: our gain since our round 0 beside the paper's 18.2 -> 20.8
    baseline = metrics(cell)[0]
    assert float(ours["gain@1_pct"]) == pytest.approx(100 * (final["pass@1"] - baseline["pass@1"]), abs=0.01)
    assert float(ours["paper_gain@1_pct"]) == pytest.approx(20.8 - 18.2) and ours["d_pass@1_pct"] == ""
    assert "gain " in capsys.readouterr().out and "vs paper +2.60" in (sweep / "paper_table6.md").read_text()


def test_the_same_command_again_finds_every_stage_finished(miniature_sweep):
    sweep, cell = miniature_sweep
    before = metrics(cell)
    again = launch_row(sweep)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("finished earlier, skipping") == 5
    assert metrics(cell) == before
