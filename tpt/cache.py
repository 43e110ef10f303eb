"""Content-addressed caches shared by every cell and sweep on a machine or a cluster (docs/design.md,
"The caches"): a keyed store of JSON values (generations: tpt/backends/cache.py; code verdicts, keyed
by the programs, tests and limits: tpt/verify/code.py), model identities, and trained checkpoints,
keyed by their lineage.

Many jobs on many nodes may ask for one entry at once (docs/guarantees.md): an entry is published by
the first complete writer (tpt.io.write_text_once, publish_dir_once) and carries checksums of what it
holds; a damaged entry is named in the log, dropped and computed again. File locks only save
duplicate work, and nobody waits on one for longer than `lock_wait_s`."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

from tpt.config import CacheConfig
from tpt.io import (
    Damaged,
    DiskFull,
    advisory_lock,
    damage,
    manifest,
    publish_dir_once,
    read_json,
    sha256_of,
    unique_suffix,
    write_json,
    write_text_once,
)

log = logging.getLogger(__name__)

_SMALL_FILES = (".json", ".jinja", ".txt", ".model")
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".gguf")
_EDGE = 4 << 20  # bytes hashed at each end of a weight file


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _weights_fingerprint(path: Path) -> str:
    """Size plus the first and last 4 MiB: unique in practice, and fast even for 100 GB of shards."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(_EDGE))
        if size > 2 * _EDGE:
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
    return h.hexdigest()


def model_fingerprint(model_id: str, resolved: str, revision: Optional[str]) -> str:
    """Identity of a base model: its local files, or the hub id and revision."""
    folder = Path(resolved)
    if not folder.is_dir():
        return digest({"hub": model_id, "revision": revision or "main"})
    parts = {}
    for f in sorted(folder.iterdir()):
        if f.suffix in _SMALL_FILES:
            parts[f.name] = sha256_of(f)
        elif f.suffix in _WEIGHT_FILES:
            parts[f.name] = _weights_fingerprint(f)
    return digest({"files": parts})


def lineage(parent: str, examples: Sequence[dict], train_cfg: dict) -> str:
    """Identity of a fine-tuned model: what it was trained from, on (the examples as the trainer gets
    them: prompt and completion, not where they came from), and how."""
    return digest({"parent": parent, "examples": list(examples), "train": train_cfg})


LOCK_WAIT_S = CacheConfig.lock_wait_s


ENTRY_KEYS = {"sha256", "value", "seconds"}  # seconds: since cost accounting; older entries lack it
# A network filesystem's client may keep saying "no such file" for a while after another node published
# one (NFS's and FUSE's cached negative lookups): how long a writer that lost the race waits to see it.
SEE_PUBLISHED_S = 30.0


class KeyedStore:
    """JSON values by content key, one file each with the sha256 of its value and the seconds its
    computing took (what reusing it saves). Concurrent askers of one key: a lock (where it works) lets
    the second wait for the first and reuse its value; without one both compute, the first to finish
    publishes, and both return the published value."""

    def __init__(self, root: Path, what: str, lock_wait_s: float = LOCK_WAIT_S):
        self.root, self.what = Path(root), what  # `what`: the values, for the log ("generations")
        self.lock_wait_s = lock_wait_s
        self.root.mkdir(parents=True, exist_ok=True)

    def get_or_compute(
        self, key: str, compute: Callable[[], Any], desc: str = "", keep: Callable[[Any], bool] = lambda value: True
    ) -> Any:
        """The stored value, or `compute()`'s, stored unless `keep(value)` is false."""
        return self.fetch_or_compute(key, compute, desc, keep)[0]

    def fetch_or_compute(
        self, key: str, compute: Callable[[], Any], desc: str = "", keep: Callable[[Any], bool] = lambda value: True
    ) -> Tuple[Any, Optional[float]]:
        """(value, saved): `saved` is None when the value was computed here, else the seconds its
        computing took where it was computed (0.0 for an entry of a tpt that did not record them)."""
        path = self.root / f"{key}.json"
        found = self._read(path, desc)
        if found is not None:
            return found
        with advisory_lock(self.root / f"{key}.json.lock", self.lock_wait_s):
            found = self._read(path, desc)
            if found is not None:
                return found
            start = time.perf_counter()
            value = compute()
            seconds = round(time.perf_counter() - start, 3)
            if not keep(value):
                return value, None
            try:
                if write_text_once(path, json.dumps({"sha256": digest(value), "value": value, "seconds": seconds})):
                    return value, None
            except DiskFull as e:  # a full cache never fails the work that computed the value
                log.warning("%s: %s not cached: %s", desc, self.what, e)
                return value, None
            found = self._published(path, desc)  # another process published first: everyone uses its value
            return (found[0], None) if found is not None else (value, None)

    def _published(self, path: Path, desc: str) -> Optional[Tuple[Any, float]]:
        """The entry another process has just published at `path`, waiting until this node sees it."""
        deadline, pause = time.monotonic() + SEE_PUBLISHED_S, 0.05
        while True:
            found = self._read(path, desc)
            if found is not None or time.monotonic() > deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        if found is None:
            log.warning(
                "%s: %s entry %s was published by another process but is not readable here; using this process's value",
                desc,
                self.what,
                path.stem[:12],
            )
        return found

    def _read(self, path: Path, desc: str) -> Optional[Tuple[Any, float]]:
        """(value, seconds its computing took) of a whole entry; None if there is none. A damaged one
        is logged and removed."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            entry = json.loads(text)
            if not (isinstance(entry, dict) and {"sha256", "value"} <= entry.keys() <= ENTRY_KEYS):
                raise ValueError("not an entry of this tpt version (value and its sha256)")
            if digest(entry["value"]) != entry["sha256"]:
                raise ValueError("its value does not match its sha256")
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            log.warning("%s: cached %s entry %s is damaged (%s); computing it again", desc, self.what, path, e)
            path.unlink(missing_ok=True)
            return None
        log.info("%s: reusing cached %s %s", desc, self.what, path.stem[:12])
        return entry["value"], float(entry.get("seconds", 0.0))


class CheckpointCache:
    """Trained checkpoints by lineage identity (parent model, training data, train settings): a cell
    whose round trains exactly what another cell trained before reuses that checkpoint, as the
    paper's tables repeat cells (Table 2's 2k self-data row is Table 5's 2k gt row). An entry's
    files are hard links to the run directory's, so it outlives the run directory and costs no disk
    beside it; an entry appears whole, by one rename, or not at all.

    Across filesystems (a cache in a quota-limited home, runs on scratch) hard links fail: by default
    nothing is copied (`cache.copy_checkpoints=true` copies), and a store that fails for any reason
    (a full disk, a quota) is logged and dropped: it never fails the train stage that finished."""

    def __init__(self, root: Path, copy: bool = False):
        self.root = Path(root)
        self.copy = copy

    def fetch(self, identity: str, model_dir: Path, desc: str) -> Optional[dict]:
        """The cached checkpoint put at `model_dir` and its training result, or None if not cached, if it
        is damaged (then it is dropped), or if it cannot be put there: the stage then trains."""
        entry = self.root / identity
        if not (entry / "result.json").is_file():
            return None
        try:
            stored = read_json(entry / "result.json")
            if not isinstance(stored, dict) or "files" not in stored:
                raise Damaged(f"{entry / 'result.json'} has no checksums (written by an older tpt)")
            problems = damage(entry / "model", stored["files"])
            if problems:
                raise Damaged("; ".join(problems))
        except Damaged as e:
            log.warning("%s: the cached checkpoint %s is damaged (%s); dropping it and training", desc, entry, e)
            self._drop(entry)
            return None
        log.info(
            "%s: reusing the checkpoint trained earlier with the same parent, data and settings %s "
            "(cache.trained=false trains again)",
            desc,
            identity[:12],
        )
        try:
            shutil.copytree(entry / "model", model_dir, copy_function=_link_or_copy)
        except OSError as e:  # a copy across filesystems that does not fit: train instead
            log.warning("%s: could not put the cached checkpoint at %s (%s); training instead", desc, model_dir, e)
            shutil.rmtree(model_dir, ignore_errors=True)
            return None
        return stored["result"]

    def store(self, identity: str, model_dir: Path, result: dict) -> None:
        entry = self.root / identity
        if entry.exists():
            return
        tmp = self.root / f".{identity}.{unique_suffix()}.tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(model_dir, tmp / "model", copy_function=_link_or_copy if self.copy else os.link)
            write_json(tmp / "result.json", {"result": result, "files": manifest(tmp / "model")})
            publish_dir_once(tmp, entry)  # another cell stored the same checkpoint first: keep that one
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            cross = getattr(e, "errno", None) == errno.EXDEV or "Invalid cross-device link" in str(e)
            log.warning(
                "checkpoint cache: %s not stored (%s)%s",
                identity[:12],
                e,
                "; the cache is on another filesystem than the run: set cache.copy_checkpoints=true to "
                "copy, or cache.dir beside the outputs to link"
                if cross
                else "",
            )

    def _drop(self, entry: Path) -> None:
        """Remove an entry: renamed out of the way first, so no reader finds it half deleted."""
        trash = entry.with_name(f".{entry.name}.{unique_suffix()}.drop")
        try:
            entry.rename(trash)
        except OSError:
            return  # another process dropped it first
        shutil.rmtree(trash, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem (or one without hard links)
        shutil.copy2(src, dst)
