"""The shared generation cache: hits, keys, concurrent askers, and cells of a sweep sharing it."""
import json
import multiprocessing as mp
import time
from pathlib import Path

from tests.conftest import compose, count_generate_calls, tiny_overrides
from tpt import loop
from tpt.cache import GenerationCache, generation_key, lineage, model_fingerprint
from tpt.backends import Completion, Sampling

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
    data = tmp_path / "train.jsonl"
    data.write_text('{"q": 1}\n')
    first = lineage(a, data, {"epochs": 1, "lr": 1e-5})
    assert first == lineage(a, data, {"epochs": 1, "lr": 1e-5})
    assert first != lineage(a, data, {"epochs": 2, "lr": 1e-5})
    data.write_text('{"q": 2}\n')
    assert first != lineage(a, data, {"epochs": 1, "lr": 1e-5})


def _ask(root, counter, out):
    cache = GenerationCache(Path(root))

    def compute():
        with open(counter, "a") as f:
            f.write("computed\n")
        time.sleep(1.0)  # long enough for the other process to be waiting on the lock
        return [[Completion("same", 3)]]

    result = cache.get_or_compute("k" * 64, compute)
    Path(out).write_text(json.dumps([[c.text for c in cs] for cs in result]))


def test_two_processes_compute_once(tmp_path):
    ctx = mp.get_context("spawn")
    counter = tmp_path / "counter"
    procs = [ctx.Process(target=_ask, args=(str(tmp_path / "cache"), str(counter), str(tmp_path / f"out{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.read_text() == "computed\n"
    assert (tmp_path / "out0").read_text() == (tmp_path / "out1").read_text() == '[["same"]]'
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # no torn entry left behind


def test_cells_of_a_sweep_share_baseline_and_round_1_samples(tiny_model_dir, tmp_path, monkeypatch):
    calls = count_generate_calls(monkeypatch)
    cache_dir = tmp_path / "cache"
    loop.run(compose(tiny_overrides(tiny_model_dir, cache_dir=cache_dir) + ["pruning=none"]), tmp_path / "a")
    assert calls == ["round 0 eval", "round 1 think", "round 1 eval"]
    calls.clear()
    loop.run(compose(tiny_overrides(tiny_model_dir, cache_dir=cache_dir) + ["pruning=none", "data.size=2"]),
             tmp_path / "b")
    assert calls == ["round 1 eval"]  # M_1 differs (other data); M_0's generations came from the cache
    think = [(tmp_path / c / "round_1" / "think" / "samples.jsonl").read_text() for c in ("a", "b")]
    assert think[0] == think[1]


def test_cache_off_composes_and_disables():
    assert compose(["cache=off"]).cache.enabled is False
    assert compose([]).cache.enabled is True
