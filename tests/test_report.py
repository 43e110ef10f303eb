"""tpt.report on a made-up outputs tree with known numbers."""

import csv
import json

import pytest

from tpt.report import main

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


def make_cell(root, name, pruning, size, rounds, metrics_by_round):
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(f"rounds: {rounds}\n")
    (d / "run_config.yaml").write_text(
        f"model: {{name: m1}}\ntask: {{name: gsm8k}}\npruning: {{strategy: {pruning}}}\ndata: {{size: {size}}}\n"
    )
    rows = [
        {
            "round": r,
            "pass@1": p1,
            "pass@4": p4,
            "correct@4": p4,
            "distinct_answers": 2.0,
            "text_diversity": 0.5,
            **({"data_size": size} if r else {}),
        }
        for r, (p1, p4) in metrics_by_round.items()
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_tables_plots_and_missing_cells(tmp_path, capsys):
    make_cell(tmp_path, "data_size=1k,pruning=gt", "gt", 1000, 2, {0: (0.2, 0.5), 1: (0.3, 0.6), 2: (0.35, 0.62)})
    make_cell(
        tmp_path, "data_size=1k,pruning=none", "none", 1000, 2, {0: (0.2, 0.5), 1: (0.25, 0.55)}
    )  # round 2 still running
    make_cell(tmp_path, "data_size=2k,pruning=gt", "gt", 2000, 2, {0: (0.2, 0.5), 1: (0.32, 0.6), 2: (0.4, 0.7)})
    (tmp_path / "data_size=2k,pruning=none" / ".hydra").mkdir(parents=True)  # failed before it started
    (tmp_path / "data_size=2k,pruning=none" / ".hydra" / "config.yaml").write_text(
        "rounds: 2\nmodel: {name: m1}\ntask: {name: gsm8k}\npruning: {strategy: none}\ndata: {size: 2000}\n"
    )

    main([str(tmp_path)])

    out = capsys.readouterr().out
    assert "4 cell(s), 12 row(s), 4 missing" in out
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    by = {(r["cell"], r["round"]): r for r in rows}
    assert float(by[("data_size=2k,pruning=gt", "2")]["pass@1"]) == 0.4
    assert float(by[("data_size=1k,pruning=gt", "1")]["pass@k"]) == 0.6
    assert by[("data_size=1k,pruning=gt", "1")]["k"] == "4"
    assert by[("data_size=1k,pruning=none", "2")]["status"] == "missing"
    assert all(by[("data_size=2k,pruning=none", str(r))]["status"] == "missing" for r in range(3))
    assert by[("data_size=2k,pruning=gt", "0")]["source"] == "self"
    assert (
        "| data_size=2k,pruning=gt | m1 | gsm8k | self | gt | 2000 | 2 | done | 2000 | 4 | 0.400 |"
        in (tmp_path / "report.md").read_text()
    )
    for png in ("pass_by_round.png", "pass_by_data_size.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_an_empty_folder_says_so(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="no runs found"):
        main([str(tmp_path)])


def write_samples(cell_dir, round_idx, verdicts):
    """eval/samples.jsonl for made-up per-question verdicts {qid: [bool, ...]}."""
    d = cell_dir / f"round_{round_idx}" / "eval"
    d.mkdir(parents=True, exist_ok=True)
    d.joinpath("samples.jsonl").write_text(
        "".join(
            json.dumps({"qid": q, "sample": j, "correct": ok, "n_tokens": 10 + j}) + "\n"
            for q, v in verdicts.items()
            for j, ok in enumerate(v)
        )
    )


def test_report_marks_paired_changes_beyond_two_standard_errors(tmp_path, capsys):
    import math

    make_cell(tmp_path, "a", "gt", 1000, 1, {0: (0.25, 0.5), 1: (0.75, 0.9)})
    base = {f"q{i}": [False, False, i % 2 == 0, False] for i in range(8)}  # pass@1 per question 0.25 or 0
    better = {f"q{i}": [True, True, True, i % 4 == 0] for i in range(8)}  # 1.0 or 0.75
    write_samples(tmp_path / "a", 0, base)
    write_samples(tmp_path / "a", 1, better)
    main([str(tmp_path), "--compare", "a@1", "a@0"])
    # brute force: per-question pass@1 differences, their mean and paired standard error
    diffs = [sum(better[q]) / 4 - sum(base[q]) / 4 for q in base]
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
    rows = {(r["cell"], r["round"]): r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert float(rows[("a", "1")]["d_pass@1"]) == pytest.approx(mean)
    assert float(rows[("a", "1")]["d_pass@1_se"]) == pytest.approx(se)
    assert rows[("a", "1")]["d_sig"] == "*" and abs(mean / se) > 2
    out = capsys.readouterr().out
    assert f"{mean:+.3f} ± {se:.3f} *" in out and "| 8 |" in out


def test_disagreements_prints_each_kind_with_examples(tmp_path, capsys):
    make_cell(tmp_path, "a", "gt", 1000, 1, {0: (0.5, 0.5)})
    rows = [
        {
            "qid": "q1",
            "sample": 0,
            "answer": "42",
            "pred": "42",
            "correct": True,
            "second_correct": False,
            "completion": "#### 42\nSo the total is 41.",
        },
        {
            "qid": "q2",
            "sample": 1,
            "answer": "42",
            "pred": None,
            "correct": False,
            "second_correct": True,
            "completion": "The answer is 42 dollars",
        },
        {
            "qid": "q3",
            "sample": 0,
            "answer": "7",
            "pred": "7",
            "correct": True,
            "second_correct": True,
            "completion": "#### 7",
        },
    ]
    eval_dir = tmp_path / "a" / "round_0" / "eval"
    eval_dir.mkdir(parents=True)
    (eval_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(tmp_path), "--disagreements"])
    out = capsys.readouterr().out
    assert (
        "a, round 0: 3 samples, 1 where the rule says right, math-verify wrong, 1 where math-verify says right, "
        "the rule wrong"
    ) in out
    assert "q1 sample 0, gold '42', rule read '42'" in out and "So the total is 41." in out
    assert "q2 sample 1, gold '42', rule read None" in out and "q3" not in out


def test_reasoning_plots_and_the_pass_at_k_curve(tmp_path):
    """pass_at_k.png and completion_lengths.png from a cell's eval samples; the curve is the unbiased
    Pass@k for every k, checked by enumerating the k-subsets."""
    import itertools

    from tpt.report import load_cells, pass_curve, plot_reasoning

    make_cell(tmp_path, "a", "gt", 1000, 1, {0: (0.25, 0.5), 1: (0.5, 0.75)})
    verdicts = {
        0: {"q0": [True, False, False, False], "q1": [False, False, False, False], "q2": [True, True, False, True]},
        1: {"q0": [True, True, False, False], "q1": [False, True, False, False], "q2": [True, True, True, True]},
    }
    for r, per_q in verdicts.items():
        write_samples(tmp_path / "a", r, per_q)
        samples = [json.loads(line) for line in (tmp_path / "a" / f"round_{r}" / "eval" / "samples.jsonl").open()]
        brute = [
            sum(
                sum(any(c) for c in itertools.combinations(v, k)) / len(list(itertools.combinations(v, k)))
                for v in per_q.values()
            )
            / len(per_q)
            for k in range(1, 5)
        ]
        assert pass_curve(samples) == pytest.approx(brute)
    written = plot_reasoning(load_cells(tmp_path), tmp_path)
    assert [p.name for p in written] == ["pass_at_k.png", "completion_lengths.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_cost_totals_each_cell_and_the_sweep(tmp_path, capsys):
    make_cell(tmp_path, "a", "gt", 1000, 1, {0: (0.2, 0.4), 1: (0.3, 0.5)})
    make_cell(tmp_path, "b", "none", 1000, 1, {0: (0.2, 0.4), 1: (0.3, 0.5)})
    for name, hours in (("a", (0.5, 1.5)), ("b", (1.0, 2.0))):
        path = tmp_path / name / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row, h in zip(rows, hours):
            reused = name == "b" and row["round"] == 1
            row.update(
                {
                    "cost/device": "gpu",
                    "cost/device_hours": h,
                    "cost/eval_s": 1800.0,
                    "cost/prompt_tokens": 300,
                    "cost/generated_tokens": 1000,
                    "cost/trained_tokens": 500 * row["round"],
                    "cost/checkpoint_from_cache": reused,
                    "cost/generations_reused": 2 if reused else 0,
                    "cost/saved_s": 3600.0 if reused else 0.0,
                }
            )
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(tmp_path), "--cost", "--gpu-hour-price", "2"])
    out = capsys.readouterr().out
    assert "a | gpu | 1 | 1.000 | 2.000 | 600 | 2,000 | 500 | - | 0.000" in out
    assert "b | gpu | 1 | 1.000 | 3.000 | 600 | 2,000 | 500 | 2 gen, 1 ckpt | 1.000" in out
    assert "**total** | | | 2.000 | 5.000 gpu | 1,200 | 4,000 | 1,000 | 2 gen, 1 ckpt | 1.000" in out
    assert "5.00 GPU-hours at 2 per GPU-hour: 10.00" in out and (tmp_path / "cost.md").is_file()


@pytest.mark.e2e
def test_a_run_records_what_it_cost_and_its_contamination(tiny_model_dir, tmp_path, capsys):
    """Each round's cost as its stages' markers, prompts and samples say it; the same cell run again
    on the same caches reuses every generation and the checkpoint, and says what that saved; `--cost`
    sums it and sets it beside the plan's bounds; and the run's contamination.json."""
    from tests.conftest import compose, tiny_overrides
    from tpt import loop
    from tpt.models import load_tokenizer
    from tpt.prompt import encode

    overrides = tiny_overrides(tiny_model_dir, cache_dir=tmp_path / "cache") + ["pruning=none"]
    run_dir = tmp_path / "runs" / "cell"
    rows = loop.run_cell(compose(overrides), run_dir)
    tokenizer = load_tokenizer(str(tiny_model_dir), None)
    first_generation_s = 0.0
    for row in rows:
        r = row["round"]
        stages = ["eval"] if r == 0 else ["think", "prune", "train", "eval"]
        markers = {s: json.loads((run_dir / f"round_{r}" / s / "DONE.json").read_text()) for s in stages}
        assert all(row[f"cost/{s}_s"] == markers[s]["seconds"] for s in stages)
        assert row["cost/device_hours"] == pytest.approx(sum(m["device_seconds"] for m in markers.values()) / 3600)
        assert row["cost/device"] == "cpu" and markers["eval"]["devices"] >= 1
        generating = [s for s in ("think", "eval") if s in stages]
        tokens = sum(
            json.loads(line)["n_tokens"]
            for s in generating
            for line in (run_dir / f"round_{r}" / s / "samples.jsonl").open()
        )
        assert row["cost/generated_tokens"] == tokens > 0
        prompts = [
            json.loads(line)["prompt"]
            for s in generating
            for line in (run_dir / f"round_{r}" / s / "prompts.jsonl").open()
        ]
        assert row["cost/prompt_tokens"] == sum(len(ids) for ids in encode(tokenizer, prompts)) > 0  # once per question
        assert row["cost/generations_reused"] == row["cost/chunks_resumed"] == 0 and row["cost/saved_s"] == 0
        first_generation_s += sum(
            json.loads((run_dir / f"round_{r}" / s / "cost.json").read_text())["chunk_seconds"] for s in generating
        )
        if r:
            assert row["cost/trained_tokens"] > 0 and row["cost/checkpoint_from_cache"] is False
            assert (
                row["cost/trained_examples"]
                == json.loads((run_dir / "round_1/train/result.json").read_text())["examples"]
            )
    assert "What it cost:" in (run_dir / "summary.md").read_text()

    again = loop.run_cell(compose(overrides), tmp_path / "runs" / "again")  # same caches, another run directory
    trained_s = json.loads((run_dir / "round_1/train/result.json").read_text())["seconds"]
    assert [r["cost/generations_reused"] for r in again] == [
        1,
        2,
    ]  # a chunk each of round 0 eval, round 1 think and eval
    assert again[1]["cost/checkpoint_from_cache"] is True
    saved = sum(r["cost/saved_s"] for r in again)
    assert trained_s < saved <= first_generation_s + trained_s + 0.01  # generation saved: less than its chunks took
    assert [r["cost/generated_tokens"] for r in again] == [r["cost/generated_tokens"] for r in rows]

    report = json.loads((run_dir / "contamination.json").read_text())
    # the bundled arith problems are checked by whole questions (their templates share every 8-gram)
    assert (report["rule"], report["ngram"], report["compared"]) == ("exact", None, "train questions")
    assert "overlapping_eval_ids" in report
    solutions = json.loads((run_dir / "round_1" / "prune" / "contamination.json").read_text())
    assert solutions["compared"] == "training solutions (self)" and solutions["examples"] == rows[1]["data_size"]
    assert rows[1]["train_solutions_overlap"] == solutions["overlapping_examples"]
    main([str(tmp_path / "runs"), "--cost"])
    out = capsys.readouterr().out
    assert "cell | cpu | 1 |" in out and "| 3 gen, 1 ckpt |" in out.split("again | cpu | 1 |")[1].splitlines()[0]
    plan_line = next(line for line in out.splitlines() if line.startswith("cell | 1/1 |"))
    measured, bound = [int(x.replace(",", "")) for x in plan_line.split(" | ")[2].split(" (")[0].split(" / ")]
    assert measured == sum(r["cost/generated_tokens"] for r in rows) and measured <= bound
