"""W&B as a multirun logs it, read back from the offline run files (no key, no network)."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, tiny_overrides
from tests.wandb_records import offline_runs, read_run
from tpt.tracking import SAMPLE_COLUMNS


def launch(*args, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), HYDRA_FULL_ERROR="0")  # no ~/.netrc either: W&B must choose offline
    return subprocess.run(
        [sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )


@pytest.mark.e2e
def test_a_multirun_logs_one_offline_run_per_cell_and_a_rerun_resumes_it(tiny_model_dir, tmp_path):
    cell = [o for o in tiny_overrides(tiny_model_dir, run_name="wb") if o != "name=wb"]
    sweep = ["-m", "name=wbsweep", "logger=wandb", "pruning=gt,none", *cell, f"hydra.sweep.dir={tmp_path}/sweep"]
    res = launch(*sweep, home=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    cells = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "metrics.jsonl").is_file())
    assert len(cells) == 2

    for run_dir in cells:
        metrics = [json.loads(l) for l in (run_dir / "metrics.jsonl").open()]
        [run_file] = offline_runs(run_dir)
        run = read_run(run_file)
        assert run["run"]["id"] == hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
        assert run["run"]["group"] == "wbsweep" and run["run"]["name"] == run_dir.name
        assert run["run"]["project"] == "tpt"
        # The config as a plain dict (resolved, nested).
        assert run["config"]["model"]["id"] == str(tiny_model_dir)
        assert run["config"]["pruning"]["strategy"] in run_dir.name
        assert run["config"]["eval"]["k"] == [1, 2]
        # One history row per round, step = round, with the values metrics.jsonl holds.
        assert [h["_step"] for h in run["history"]] == [m["round"] for m in metrics] == [0, 1]
        for h, m in zip(run["history"], metrics):
            for key in ("pass@1", "pass@2", "correct@2", "distinct_answers", "text_diversity"):
                assert h[key] == m[key], key
            assert h["samples/_type"] == "table-file"
            assert h["samples/nrows"] == 6 and h["samples/ncols"] == len(SAMPLE_COLUMNS)  # 3 questions x 2
        table = json.loads((run_file.parent / "files" / run["history"][1]["samples/path"]).read_text())
        assert table["columns"] == SAMPLE_COLUMNS and {r[0] for r in table["data"]} == {1}
        assert run["summary"]["final/pass@1"] == metrics[-1]["pass@1"]
        assert run["summary"]["final/round"] == 1
        # What the cell cost, over its rounds.
        for key in ("device_hours", "prompt_tokens", "generated_tokens", "trained_tokens"):
            assert run["summary"][f"cost_total/{key}"] == pytest.approx(sum(m.get(f"cost/{key}", 0) for m in metrics))
        assert run["summary"]["cost_total/generated_tokens"] > 0 and h["cost/prompt_tokens"] > 0
        # Progress as the stages ran: the last figures of each chunked stage, all chunks done.
        for stage in ("round_0/eval", "round_1/think", "round_1/eval"):
            assert run["summary"][f"progress/{stage}/chunks_done"] == run["summary"][f"progress/{stage}/chunks"] >= 1
            assert run["summary"][f"progress/{stage}/tokens_per_s"] > 0
        assert run["exit_code"] == 0  # finished cleanly, inside the multirun

    # The same sweep again (as a requeued job would): each cell continues its own run id.
    again = launch(*sweep, home=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for run_dir in cells:
        first, second = offline_runs(run_dir)
        assert read_run(first)["run"]["id"] == read_run(second)["run"]["id"]


@pytest.mark.e2e
def test_logger_none_writes_no_wandb_files(tiny_model_dir, tmp_path):
    res = launch(*tiny_overrides(tiny_model_dir), "logger=none", f"hydra.run.dir={tmp_path}/run", home=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and not (tmp_path / "run" / "wandb").exists()
