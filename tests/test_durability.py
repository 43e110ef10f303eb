"""What survives what (docs/guarantees.md): many processes writing one cache entry at once, with file
locks that work, that fail, or that do not reach across nodes; damaged cache entries and finished
stages; a disk that fills in the middle of a stage."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose, outcome, tiny_overrides
from tpt import loop
from tpt.cache import CheckpointCache, KeyedStore
from tpt.io import Damaged, DiskFull, no_space_code, write_text_atomic
from tpt.training import distributed

WRITERS = 8


def ask_at_once(kind: str, locks: str, root: Path, writers: int = WRITERS) -> list:
    """`writers` real processes ask the cache for the same entry at once; what each got back."""
    gates = root / f"gates-{kind}-{locks}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.cache_writer", kind, locks, str(root), str(gates), str(writers), str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    answers = []
    for p in procs:
        out, err = p.communicate(timeout=600)  # nobody waits forever
        assert p.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return answers


def leftovers(root: Path) -> list:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".drop")) or ".partial" in p.name]


@pytest.mark.e2e
@pytest.mark.parametrize("locks", ["working", "refused", "node-local"])
@pytest.mark.parametrize("kind", ["generation", "verdict"])
def test_many_writers_of_one_keyed_entry_agree_on_one_whole_value(tmp_path, kind, locks):
    answers = ask_at_once(kind, locks, tmp_path)
    computed = sum(a["computed"] for a in answers)
    # With a lock one computes and the rest wait for it; without, all compute (the gate makes sure).
    assert computed == (1 if locks == "working" else WRITERS), answers
    values = [json.dumps(a["value"], sort_keys=True) for a in answers]
    assert len(set(values)) == 1, values  # each wrote its own index: everyone returns the first published
    [entry] = (tmp_path / ("generations" if kind == "generation" else "verdicts")).glob("*.json")
    stored = json.loads(entry.read_text())["value"]
    assert (
        json.dumps(stored if kind == "verdict" else [[c["text"] for c in cs] for cs in stored], sort_keys=True)
        == values[0]
    )
    assert not leftovers(tmp_path)


@pytest.mark.e2e
def test_many_writers_of_one_checkpoint_publish_one_whole_entry(tmp_path):
    answers = ask_at_once("checkpoint", "node-local", tmp_path)
    [winner] = {a["value"]["result"]["writer"] for a in answers}  # every fetch gets the one published
    assert {a["value"]["weights"] for a in answers} == {bytes([winner]).hex()}  # its bytes, not a mix
    [entry] = [p for p in (tmp_path / "trained").iterdir()]
    assert CheckpointCache(tmp_path / "trained").fetch(entry.name, tmp_path / "again", "test") == {"writer": winner}
    assert not leftovers(tmp_path)


@pytest.mark.e2e
def test_many_processes_converting_the_embedded_model_publish_one_copy(tmp_path):
    """3 writers, not 8: each loads and converts a 135M model (2 cores take about a minute for 4)."""
    answers = ask_at_once("conversion", "node-local", tmp_path, writers=3)
    assert sum(a["computed"] for a in answers) == 3  # no lock held them back: each converted
    assert len({json.dumps(a["value"], sort_keys=True) for a in answers}) == 1
    assert (tmp_path / "models" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    assert not leftovers(tmp_path)


def test_a_conversion_parses_the_gguf_file_once_and_leaves_gguf_as_it_was(monkeypatch):
    """transformers loads the config, the tokenizer and the weights each through load_gguf_checkpoint;
    inside gguf_parsed_once the file is parsed by the first only (tpt/models.py; the converted files
    are the same bytes either way). Fails if transformers stops looking the parser up on gguf."""
    import gguf
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from tpt.models import _embedded_gguf, gguf_parsed_once

    parsed = []

    class CountingReader(gguf.GGUFReader):
        def __init__(self, *args, **kwargs):
            parsed.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    path = str(Path(*_embedded_gguf("smollm2-135m-instruct")))
    with gguf_parsed_once():
        assert load_gguf_checkpoint(path) == load_gguf_checkpoint(path)
    assert len(parsed) == 1
    assert gguf.GGUFReader is CountingReader  # as it was before


# --- damage ---------------------------------------------------------------------------------------------
def test_a_damaged_keyed_entry_is_named_dropped_and_computed_again(tmp_path, caplog):
    store = KeyedStore(tmp_path, "verdicts")
    assert store.get_or_compute("a" * 64, lambda: [1, 2, 3]) == [1, 2, 3]
    entry = tmp_path / f"{'a' * 64}.json"
    for damage in (lambda t: t[: len(t) // 2], lambda t: t.replace("[1, 2, 3]", "[1, 2, 4]"), lambda t: "[1, 2, 3]"):
        entry.write_text(damage(entry.read_text()))  # truncated; altered; an older tpt's bare value
        caplog.clear()
        assert store.get_or_compute("a" * 64, lambda: [1, 2, 3]) == [1, 2, 3]
        assert f"cached verdicts entry {entry} is damaged" in caplog.text
        assert store.get_or_compute("a" * 64, lambda: pytest.fail("recomputed a whole entry")) == [1, 2, 3]


def test_a_damaged_cached_checkpoint_is_dropped_and_trained_again(tmp_path, caplog):
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"w" * 4096)
    cache = CheckpointCache(tmp_path / "trained")
    cache.store("i" * 64, model, {"steps": 3})
    assert cache.fetch("i" * 64, tmp_path / "fetched", "test") == {"steps": 3}
    # The entry's files are hard links to the run's: damage it through a copy, as a bad disk block would.
    weights = tmp_path / "trained" / ("i" * 64) / "model" / "model.safetensors"
    weights.unlink()
    weights.write_bytes(b"w" * 2048 + b"x" + b"w" * 2047)
    assert cache.fetch("i" * 64, tmp_path / "fetched2", "test") is None
    assert f"{weights}: altered" in caplog.text and "dropping it and training" in caplog.text
    assert not (tmp_path / "trained" / ("i" * 64)).exists() and not (tmp_path / "fetched2").exists()


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tmp_path_factory):
    """One finished tiny cell (round 0 and round 1), its config and result rows: copied by each test
    that damages or re-runs it."""
    cfg = compose(tiny_overrides(tiny_model_dir) + ["pruning=none"])
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    return cfg, run_dir, loop.run_cell(cfg, run_dir)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "damaged, how",
    [
        ("round_1/think/samples.jsonl", "truncate"),
        ("round_1/train/model/model.safetensors", "flip"),
        ("round_1/prune/DONE.json", "truncate"),
    ],
)
@pytest.mark.usefixtures("train_in_process")  # the redone stages train here; finished_run trained in its own process
def test_a_damaged_finished_stage_is_refused_with_the_command_that_redoes_it(finished_run, tmp_path, damaged, how):
    cfg, original, rows = finished_run
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir)
    f = run_dir / damaged
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if how == "truncate" else data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(Damaged) as refused:
        loop.run_cell(cfg, run_dir)
    message = str(refused.value)
    assert str(f) in message and "rm -rf" in message, message
    command = message.split("\n")[1].strip()
    redo = [Path(p) for p in shlex.split(command)[2:]]
    stage = f.relative_to(run_dir).parts[:2]
    assert run_dir.joinpath(*stage) in redo and run_dir / "round_1" / "eval" in redo  # it and what came after
    assert run_dir / "round_0" / "eval" not in redo  # but not what came before
    subprocess.run(command, shell=True, check=True)
    assert outcome(loop.run_cell(cfg, run_dir)) == outcome(rows)  # redone: the same results


def test_stages_published_by_an_older_tpt_without_checksums_are_still_used(tmp_path):
    from tpt.rundir import RunDir

    stage = RunDir(tmp_path).stage(0, "eval")
    stage.dir.mkdir(parents=True)
    (stage.dir / "metrics.json").write_text("{}")
    (stage.dir / "DONE.json").write_text(json.dumps({"stage": "eval", "round": 0, "seconds": 1.0}))
    assert stage.damage() == []


# --- a full disk ----------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 128 MiB tmpfs: a real filesystem that fills (root only; CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but a tmpfs cannot be mounted here: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_write_that_finds_no_space_names_the_path_and_keeps_the_old_file(small_disk):
    target = small_disk / "metrics.json"
    write_text_atomic(target, "old")
    with pytest.raises(DiskFull) as full:
        write_text_atomic(target, "x" * (129 << 20))
    assert (
        str(target) in str(full.value)
        and "MiB free there" in str(full.value)
        and "run the same command" in str(full.value)
    )
    assert target.read_text() == "old"  # the finished file is intact
    assert [p.name for p in small_disk.iterdir()] == ["metrics.json"]  # and no torn temporary is left


def test_a_full_cache_never_fails_the_work_and_fills_again_once_space_is_freed(small_disk, caplog):
    store = KeyedStore(small_disk / "generations", "generations")
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * shutil.disk_usage(small_disk).free)
    value = ["sample " * 200] * 50
    assert store.get_or_compute("g" * 64, lambda: value, "round 1 think") == value  # computed, used, not kept
    assert "round 1 think: generations not cached: [Errno 28] no space left" in caplog.text
    assert not list((small_disk / "generations").glob("*.json*.tmp"))  # nothing torn left behind
    assert not (small_disk / "generations" / f"{'g' * 64}.json").exists()
    filler.unlink()
    assert store.get_or_compute("g" * 64, lambda: value) == value
    assert store.get_or_compute("g" * 64, lambda: pytest.fail("not stored once space was freed")) == value


def test_a_library_that_finds_no_space_is_recognised_by_its_own_words(small_disk):
    """safetensors writes in Rust: a full disk reaches Python as SafetensorError, not OSError, so the
    training worker must know it by its wording (tpt.io.no_space_code) to tell the parent."""
    import errno

    import torch
    from safetensors.torch import save_file

    with pytest.raises(Exception) as full:
        save_file({"w": torch.zeros(40 << 20)}, str(small_disk / "model.safetensors"))  # 160 MiB into 128
    assert not isinstance(full.value, OSError)  # what the words are for
    assert no_space_code(full.value) == errno.ENOSPC, full.value
    try:
        try:
            write_text_atomic(small_disk / "big.json", "x" * (129 << 20))
        except DiskFull as e:
            raise RuntimeError("saving failed") from e
    except RuntimeError as wrapped:
        assert no_space_code(wrapped) == errno.ENOSPC  # found along the chain
    assert no_space_code(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    assert no_space_code(RuntimeError("CUDA out of memory")) is None
    assert no_space_code(OSError(errno.EACCES, "Permission denied")) is None


def test_a_conversion_that_finds_no_space_says_so_and_leaves_no_half_copy(small_disk, tiny_model_dir, monkeypatch):
    """The embedded model's first use writes its safetensors copy into the cache: on a full disk that
    is tpt's DiskFull naming the cache (safetensors raises an error of its own), and no half-written
    copy is left to take space. The GGUF parse (seconds) is replaced by loading the tiny model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tpt import models

    load_model, load_tokenizer = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: load_model(tiny_model_dir))
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *a, **k: load_tokenizer(tiny_model_dir))
    monkeypatch.setenv("TPT_CACHE_DIR", str(small_disk / "cache"))
    (small_disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - (256 << 10)))
    with pytest.raises(DiskFull) as full:
        models.materialize_embedded("smollm2-135m-instruct")
    assert "no space left" in str(full.value) and "models/smollm2-135m-instruct" in str(full.value), full.value
    assert "Safetensor" in type(full.value.__cause__).__name__  # the model's weights were what did not fit
    assert [p.name for p in (small_disk / "cache" / "models").iterdir() if "partial" in p.name] == []


@pytest.mark.e2e
def test_a_run_that_fills_the_disk_resumes_to_the_same_results_once_space_is_freed(
    finished_run, small_disk, monkeypatch
):
    """The tiny cell's round 1 checkpoint does not fit beside what a filler leaves free: training stops
    with a clear message; deleting the filler and running again ends with the undisturbed run's results.
    The training process must say it ran out of space: the parent's fallback (a disk found nearly full
    after any failure) is off here, as it would miss a write that failed with more than that left."""
    monkeypatch.setattr(distributed, "LOW_SPACE", 0)
    cfg, undisturbed, expected = finished_run
    model_bytes = sum(f.stat().st_size for f in (undisturbed / "round_1" / "train" / "model").rglob("*"))
    run_dir = small_disk / "run"
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, free - model_bytes // 2 - 256 * 1024))  # round 0 fits; the model does not
    with pytest.raises(DiskFull) as full:
        loop.run_cell(cfg, run_dir)
    assert "no space left" in str(full.value) and "round_1" in str(full.value), full.value
    assert (run_dir / "round_0" / "eval" / "DONE.json").is_file()  # finished before the disk filled: kept
    filler.unlink()
    assert outcome(loop.run_cell(cfg, run_dir)) == outcome(expected)
    assert not leftovers(run_dir)


def test_a_dead_process_is_judged_by_its_own_host_name_exactly(tmp_path, monkeypatch):
    """Nodes named `node` and `node-12` share a prefix: a temporary file of one is never taken for the other's
    (once, `node` read `.x.node-12-4711.tmp` as its own pid 12)."""
    import socket

    from tpt import io

    dead_pid = 2**22 + 7  # above the kernel's default pid_max: no such process
    monkeypatch.setattr(socket, "gethostname", lambda: "node")
    mine = tmp_path / f".x.{io.unique_suffix()}.tmp"
    assert io.owner(mine) == ("node", io.os.getpid())
    assert io.left_by_dead_process(tmp_path / f".x.@node@{dead_pid}.tmp")
    for other in (
        f".x.@node-12@{dead_pid}.tmp",
        f".x.@12-node@{dead_pid}.tmp",
        f".think.partial@node.lan@{dead_pid}",
        f".x.node-{dead_pid}.tmp",
    ):  # another host's, and the pre-@ format (never judged)
        assert not io.left_by_dead_process(tmp_path / other), other
    monkeypatch.setattr(socket, "gethostname", lambda: "node-12")
    assert io.left_by_dead_process(tmp_path / f".x.@node-12@{dead_pid}.tmp")
    assert not io.left_by_dead_process(tmp_path / f".x.@node@{dead_pid}.tmp")


def test_a_truncated_or_altered_chunk_is_named_and_generated_again(tmp_path, caplog):
    import logging

    from tpt.stages.generation import ChunkStore

    store = ChunkStore(tmp_path / "chunks")
    rows = [{"qid": "q1", "sample": 0, "completion": "#### 3", "correct": True}]
    store.save(0, "key", rows, {"seconds": 1.0})
    store.save(1, "key", rows, {"seconds": 1.0})
    assert store.load(0, "key")["rows"] == rows and store.load(0, "other key") is None
    text = store.path(0).read_text()
    store.path(0).write_text(text[: len(text) // 2])  # a chunk cut short
    store.path(1).write_text(text.replace("#### 3", "#### 4"))  # a chunk altered
    with caplog.at_level(logging.WARNING):
        assert store.load(0, "key") is None and store.load(1, "key") is None
    assert "00000.json is damaged: not JSON" in caplog.text and "00001.json is damaged: altered" in caplog.text
    assert not store.path(0).exists() and not store.path(1).exists()  # generated again, not reused


def test_a_damaged_code_snapshot_is_named_and_copied_again(tmp_path, caplog):
    import logging

    from tpt.cluster import snapshot_code, snapshot_damage

    first = snapshot_code(ROOT, tmp_path / "code")
    assert snapshot_damage(first) == []
    (first / "tpt" / "loop.py").write_text("raise SystemExit('not the submitted code')\n")
    assert snapshot_damage(first) and "loop.py" in snapshot_damage(first)[0]
    with caplog.at_level(logging.WARNING):
        again = snapshot_code(ROOT, tmp_path / "code")
    assert again == first and snapshot_damage(again) == [] and "is damaged" in caplog.text
    assert (again / "tpt" / "loop.py").read_bytes() == (ROOT / "tpt" / "loop.py").read_bytes()


@pytest.mark.e2e
def test_a_damaged_converted_model_is_named_and_converted_again(tmp_path, monkeypatch, caplog):
    import logging

    from tpt import models

    monkeypatch.setenv("TPT_CACHE_DIR", str(tmp_path))
    target = models.materialize_embedded("smollm2-135m-instruct")
    before = json.loads((target / models.MANIFEST).read_text())
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, same name
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = models.materialize_embedded("smollm2-135m-instruct")
    assert "is damaged" in caplog.text and "model.safetensors: altered" in caplog.text
    after = json.loads((target / models.MANIFEST).read_text())
    same = lambda m: {k: (v["bytes"], v["sha256"]) for k, v in m.items()}  # noqa: E731 (new files: new times)
    assert again == target and same(after) == same(before)
    assert models.damage(target, before) == []


@pytest.mark.e2e
@pytest.mark.usefixtures("train_in_process")
def test_a_resume_checks_quickly_and_a_file_is_hashed_when_it_is_read(finished_run, tmp_path):
    """A resume compares sizes and modification times (seconds for hundreds of GB); a checkpoint altered
    in place with its time put back passes that, and is refused when the next round reads it."""
    cfg, original, rows = finished_run
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir)
    weights = run_dir / "round_1" / "train" / "model" / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time: only a hash tells
    from tpt.rundir import RunDir

    assert RunDir(run_dir).stage(1, "train").damage() == []  # the quick check lets it through
    assert RunDir(run_dir).stage(1, "train").damage(full=True)  # the full one does not
    assert outcome(loop.run_cell(cfg, run_dir)) == outcome(rows)  # nothing reads it: the finished run is intact
    more = compose(tiny_overrides(cfg.model.id) + ["pruning=none", "rounds=2"])
    with pytest.raises(
        Damaged,
        match=r"(?s)round 1 train finished earlier but its files are damaged: .*model.safetensors: "
        r"altered.*rm -rf",
    ):
        loop.run_cell(more, run_dir)  # round 2 thinks with M_1: its weights are read, and hashed first
