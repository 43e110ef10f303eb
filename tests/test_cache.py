"""The shared caches: generation hits, keys, concurrent askers, cells of a sweep sharing them, and
trained checkpoints reused by lineage."""

import json
import multiprocessing as mp
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import compose, count_generate_calls, tiny_overrides
from tpt import loop
from tpt.backends import Completion, Sampling
from tpt.backends.cache import GenerationCache, generation_key
from tpt.cache import lineage, model_fingerprint

pytestmark = pytest.mark.usefixtures("train_in_process")  # about the loop around training (tests/conftest.py)


S = Sampling(n=2, temperature=0.7, top_p=1.0, max_new_tokens=8, seed=0)


def test_second_ask_is_a_hit(tmp_path):
    cache = GenerationCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return [[Completion("a", 1), Completion("b", 2)]]

    key = generation_key("m", [[1, 2, 3]], ["q1"], S, {"backend": "hf"})
    first = cache.get_or_compute(key, compute)
    again = cache.get_or_compute(key, compute)
    assert calls == [1] and first == again == [[Completion("a", 1), Completion("b", 2)]]


def test_a_hit_says_how_long_computing_it_took(tmp_path):
    """What a cached value saves: the seconds its computing took where it was computed; an entry of a
    tpt before cost accounting (no seconds) still serves, saving an unknown 0."""
    from tpt.cache import KeyedStore

    store = KeyedStore(tmp_path, "values")

    def slow():
        time.sleep(0.2)
        return {"v": 1}

    assert store.fetch_or_compute("k" * 64, slow) == ({"v": 1}, None)  # computed here
    value, saved = store.fetch_or_compute("k" * 64, slow)
    assert value == {"v": 1} and 0.2 <= saved < 5
    entry = json.loads((tmp_path / f"{'k' * 64}.json").read_text())
    del entry["seconds"]
    (tmp_path / f"{'k' * 64}.json").write_text(json.dumps(entry))
    assert store.fetch_or_compute("k" * 64, slow) == ({"v": 1}, 0.0)


def test_key_changes_with_everything_that_decides_the_samples():
    ids, qids = [[1, 2, 3]], ["q1"]
    base = generation_key("m", ids, qids, S, {"backend": "hf"})
    assert base == generation_key("m", ids, qids, S, {"backend": "hf"})
    assert base != generation_key("m2", ids, qids, S, {"backend": "hf"})
    assert base != generation_key("m", [[1, 2, 4]], qids, S, {"backend": "hf"})  # another prompt
    assert base != generation_key("m", ids, ["q2"], S, {"backend": "hf"})  # another random stream
    assert base != generation_key("m", ids, qids, Sampling(2, 0.7, 1.0, 8, seed=1), {"backend": "hf"})
    assert base != generation_key("m", ids, qids, Sampling(3, 0.7, 1.0, 8, seed=0), {"backend": "hf"})
    assert base != generation_key("m", ids, qids, S, {"backend": "hf", "batch_size": 4})


def test_model_identity_follows_files_and_lineage(tmp_path, tiny_model_dir):
    a = model_fingerprint("x", str(tiny_model_dir), None)
    assert a == model_fingerprint("y", str(tiny_model_dir), None)  # same files, same model
    assert model_fingerprint("org/m", "org/m", None) != model_fingerprint("org/m", "org/m", "v2")
    data = [{"prompt": [{"role": "user", "content": "1+1?"}], "completion": [{"role": "assistant", "content": "2"}]}]
    first = lineage(a, data, {"epochs": 1, "lr": 1e-5})
    assert first == lineage(a, json.loads(json.dumps(data)), {"epochs": 1, "lr": 1e-5})
    assert first != lineage(a, data, {"epochs": 2, "lr": 1e-5})
    assert first != lineage(a, data + data, {"epochs": 1, "lr": 1e-5})


def _ask(root, counter, out, me, askers):
    cache = GenerationCache(Path(root))

    def compute():
        with open(counter, "a") as f:
            f.write("computed\n")
        # A barrier: the entry is computed only once every process has asked for it, so the others are
        # inside get_or_compute, waiting, while this one computes (no luck of timing needed).
        deadline = time.time() + 60
        while not all(Path(a).exists() for a in askers):
            assert time.time() < deadline, "the other process never asked"
            time.sleep(0.01)
        time.sleep(0.5)  # the others are past their marker and into get_or_compute's wait
        return [[Completion("same", 3)]]

    Path(me).write_text("asking")
    result = cache.get_or_compute("k" * 64, compute)
    Path(out).write_text(json.dumps([[c.text for c in cs] for cs in result]))


def test_two_processes_compute_once(tmp_path):
    ctx = mp.get_context("spawn")
    counter = tmp_path / "counter"
    askers = [str(tmp_path / f"asking{i}") for i in range(2)]
    procs = [
        ctx.Process(
            target=_ask, args=(str(tmp_path / "cache"), str(counter), str(tmp_path / f"out{i}"), askers[i], askers)
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.read_text() == "computed\n"
    assert (tmp_path / "out0").read_text() == (tmp_path / "out1").read_text() == '[["same"]]'
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # no torn entry left behind


@pytest.mark.e2e
def test_cells_of_a_sweep_share_baseline_and_round_1_samples(tiny_model_dir, tmp_path, monkeypatch):
    calls = count_generate_calls(monkeypatch)
    cache_dir = tmp_path / "cache"
    loop.run_cell(compose(tiny_overrides(tiny_model_dir, cache_dir=cache_dir) + ["pruning=none"]), tmp_path / "a")
    assert calls == ["round 0 eval", "round 1 think", "round 1 eval"]
    calls.clear()
    loop.run_cell(
        compose(tiny_overrides(tiny_model_dir, cache_dir=cache_dir) + ["pruning=none", "data.size=2"]), tmp_path / "b"
    )
    assert calls == ["round 1 eval"]  # M_1 differs (other data); M_0's generations came from the cache
    think = [(tmp_path / c / "round_1" / "think" / "samples.jsonl").read_text() for c in ("a", "b")]
    assert think[0] == think[1]


def test_cache_off_composes_and_disables():
    assert compose(["cache=off"]).cache.enabled is False
    assert compose([]).cache.enabled is True


def count_trainings(monkeypatch) -> list:
    """Spy on the train stage's SFT: the list grows by one per checkpoint actually trained."""
    from tpt.stages import train

    trained, original = [], train.sft

    def spy(*args, **kwargs):
        trained.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "sft", spy)
    return trained


@pytest.mark.e2e
def test_a_cell_training_what_another_trained_reuses_its_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    trained = count_trainings(monkeypatch)
    cell = tiny_overrides(tiny_model_dir, cache_dir=tmp_path / "cache") + ["pruning=none"]
    loop.run_cell(compose(cell), tmp_path / "a")
    assert len(trained) == 1
    loop.run_cell(compose(cell + ["name=other"]), tmp_path / "b")
    assert len(trained) == 1  # same parent, data and settings: b took a's checkpoint
    a, b = (tmp_path / c / "round_1" / "train" for c in ("a", "b"))
    files = sorted(p.name for p in (a / "model").iterdir())
    assert files == sorted(p.name for p in (b / "model").iterdir()) and "model.safetensors" in files
    assert all((a / "model" / f).read_bytes() == (b / "model" / f).read_bytes() for f in files)
    result_a, result_b = json.loads((a / "result.json").read_text()), json.loads((b / "result.json").read_text())
    assert "from_cache" not in result_a and len(result_b.pop("from_cache")) == 64 and result_a == result_b
    metrics = [json.loads((tmp_path / c / "metrics.jsonl").read_text().splitlines()[-1]) for c in ("a", "b")]
    assert metrics[0]["pass@1"] == metrics[1]["pass@1"]

    # The entry outlives the run directory it was trained in (hard links, not references).
    shutil.rmtree(tmp_path / "a")
    loop.run_cell(compose(cell + ["name=third"]), tmp_path / "c")
    assert len(trained) == 1
    assert (tmp_path / "c" / "round_1" / "train" / "model" / "model.safetensors").read_bytes() == (
        b / "model" / "model.safetensors"
    ).read_bytes()


@pytest.mark.e2e
def test_other_data_or_settings_train_again_and_the_switches_turn_reuse_off(tiny_model_dir, tmp_path, monkeypatch):
    trained = count_trainings(monkeypatch)
    cell = tiny_overrides(tiny_model_dir, cache_dir=tmp_path / "cache") + ["pruning=none"]
    loop.run_cell(compose(cell), tmp_path / "a")
    loop.run_cell(compose(cell + ["data.size=2"]), tmp_path / "b")  # other data
    loop.run_cell(compose(cell + ["train.lr=3e-4"]), tmp_path / "c")  # other settings
    loop.run_cell(compose(cell + ["task.instruction='Think first.'"]), tmp_path / "d")  # same data, other prompt
    # The same examples from a teacher that is the model itself: only their origin differs.
    loop.run_cell(compose(cell + ["source=distill", f"source.teacher={tiny_model_dir}"]), tmp_path / "e")
    assert len(trained) == 4
    loop.run_cell(compose(cell + ["cache.trained=false"]), tmp_path / "f")
    loop.run_cell(compose([o for o in cell if not o.startswith("cache")] + ["cache=off"]), tmp_path / "g")
    assert len(trained) == 6
    entries = [p.name for p in (tmp_path / "cache" / "trained").iterdir()]
    assert len(entries) == 4 and not any(e.startswith(".") for e in entries)  # a to d; the others store nothing


def test_a_torn_checkpoint_entry_is_not_reused(tmp_path):
    from tpt.cache import CheckpointCache

    cache, model = CheckpointCache(tmp_path / "trained"), tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "trained" / "abc" / "model").mkdir(parents=True)  # a store cut short: no result.json
    assert cache.fetch("abc", tmp_path / "out", "train") is None
    cache.store("def", model, {"examples": 3})
    assert cache.fetch("def", tmp_path / "out", "train") == {"examples": 3}
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == b"weights"
    assert (tmp_path / "out" / "model.safetensors").stat().st_ino == (model / "model.safetensors").stat().st_ino
    assert not list((tmp_path / "trained").glob(".*.tmp"))


def test_a_checkpoint_cache_on_another_filesystem_never_copies_by_default_nor_fails_the_stage(
    tmp_path, monkeypatch, caplog
):
    """Hard links fail across filesystems (EXDEV): the cache stores nothing rather than copying into a
    quota-limited home, unless cache.copy_checkpoints says so; a failed store (ENOSPC) is logged, never
    raised; a fetch that cannot be put in place lets the stage train."""
    import errno
    import logging
    import os

    from tpt.cache import CheckpointCache

    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")

    def cross_device(src, dst, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    with caplog.at_level(logging.WARNING, logger="tpt.cache"):
        CheckpointCache(tmp_path / "cache").store("abc", model, {"steps": 1})
    assert not (tmp_path / "cache" / "abc").exists() and "cache.copy_checkpoints=true" in caplog.text
    assert not list((tmp_path / "cache").glob(".*tmp"))

    copying = CheckpointCache(tmp_path / "cache", copy=True)
    copying.store("abc", model, {"steps": 1})
    assert (tmp_path / "cache" / "abc" / "model" / "model.safetensors").read_bytes() == b"weights"

    def disk_full(src, dst, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("shutil.copy2", disk_full)
    CheckpointCache(tmp_path / "cache", copy=True).store("def", model, {"steps": 1})  # logged, not raised
    assert not (tmp_path / "cache" / "def").exists()
    assert copying.fetch("abc", tmp_path / "run2" / "model", "round 1 train") is None  # cannot copy: train
    assert not (tmp_path / "run2" / "model").exists()
