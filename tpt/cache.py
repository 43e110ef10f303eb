"""Content-addressed caches shared by every cell and sweep on a machine (docs/design.md, "The
caches"): a keyed store of JSON values (generations: tpt/backends/cache.py; code verdicts, keyed by
the programs, tests and limits: tpt/verify/code.py), model identities, and trained checkpoints, keyed
by their lineage."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from filelock import FileLock

from tpt.io import read_json, write_json, write_text_atomic

log = logging.getLogger(__name__)

_SMALL_FILES = (".json", ".jinja", ".txt", ".model")
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".gguf")
_EDGE = 4 << 20  # bytes hashed at each end of a weight file


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
            parts[f.name] = file_digest(f)
        elif f.suffix in _WEIGHT_FILES:
            parts[f.name] = _weights_fingerprint(f)
    return digest({"files": parts})


def lineage(parent: str, examples: Sequence[dict], train_cfg: dict) -> str:
    """Identity of a fine-tuned model: what it was trained from, on (the examples as the trainer gets
    them: prompt and completion, not where they came from), and how."""
    return digest({"parent": parent, "examples": list(examples), "train": train_cfg})


class KeyedStore:
    """JSON values by content key, one file each, published by one rename. A file lock per key lets
    concurrent cells share an entry: the second asker waits for the first, then reads its value."""

    def __init__(self, root: Path, what: str):
        self.root, self.what = Path(root), what  # `what`: the values, for the log ("generations")
        self.root.mkdir(parents=True, exist_ok=True)

    def get_or_compute(self, key: str, compute: Callable[[], Any], desc: str = "",
                       keep: Callable[[Any], bool] = lambda value: True) -> Any:
        """The stored value, or `compute()`'s, stored unless `keep(value)` is false."""
        path = self.root / f"{key}.json"
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                log.info("%s: reusing cached %s %s", desc, self.what, key[:12])
                return json.loads(path.read_text())
            value = compute()
            if keep(value):
                write_text_atomic(path, json.dumps(value))
            return value


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
        """The cached checkpoint put at `model_dir` and its training result, or None if not cached (or
        if it cannot be put there: the stage then trains)."""
        entry = self.root / identity
        if not (entry / "result.json").is_file():
            return None
        log.info("%s: reusing the checkpoint trained earlier with the same parent, data and settings %s "
                 "(cache.trained=false trains again)", desc, identity[:12])
        try:
            shutil.copytree(entry / "model", model_dir, copy_function=_link_or_copy)
        except OSError as e:  # a copy across filesystems that does not fit: train instead
            log.warning("%s: could not put the cached checkpoint at %s (%s); training instead", desc, model_dir, e)
            shutil.rmtree(model_dir, ignore_errors=True)
            return None
        return read_json(entry / "result.json")

    def store(self, identity: str, model_dir: Path, result: dict) -> None:
        entry = self.root / identity
        if entry.exists():
            return
        tmp = self.root / f".{identity}.{os.getpid()}.tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(model_dir, tmp / "model", copy_function=_link_or_copy if self.copy else os.link)
            write_json(tmp / "result.json", result)
            try:
                tmp.rename(entry)
            except OSError:  # another cell stored the same checkpoint first
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            cross = getattr(e, "errno", None) == errno.EXDEV or "Invalid cross-device link" in str(e)
            log.warning("checkpoint cache: %s not stored (%s)%s", identity[:12], e,
                        "; the cache is on another filesystem than the run: set cache.copy_checkpoints=true to "
                        "copy, or cache.dir beside the outputs to link" if cross else "")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem (or one without hard links)
        shutil.copy2(src, dst)
