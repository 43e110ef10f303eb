"""A content-addressed cache of generations, shared by every cell and sweep on a machine: the key
covers everything that decides the samples (docs/design.md, "The generation cache"); a file lock
per key lets concurrent cells share an entry."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from filelock import FileLock

from tpt.io import write_text_atomic
from tpt.backends.base import Completion, Sampling

log = logging.getLogger(__name__)

# 3: keyed by the rendered prompt's token ids and each question's random stream (1: by the chat
# messages, which missed template changes; 2: without the streams, before they came from question ids).
KEY_VERSION = 3
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


def lineage(parent: str, train_data: Path, train_cfg: dict) -> str:
    """Identity of a fine-tuned model: what it was trained from, on, and how."""
    return digest({"parent": parent, "data": file_digest(train_data), "train": train_cfg})


def generation_key(model_identity: str, prompts: Sequence[Sequence[int]], keys: Sequence[str], sampling: Sampling,
                   generator: dict) -> str:
    """What decides a call's generations: the model, the token ids it is given (the rendered chat
    template, not the messages), each prompt's random stream (its question id), the sampling, and
    the backend settings that change samples."""
    return digest({"version": KEY_VERSION, "model": model_identity, "prompts": prompts, "streams": list(keys),
                   "sampling": asdict(sampling), "generator": generator})


class GenerationCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get_or_compute(self, key: str, compute: Callable[[], List[List[Completion]]],
                       desc: str = "generate") -> List[List[Completion]]:
        path = self.root / f"{key}.json"
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                log.info("%s: reusing cached generations %s", desc, path.name[:12])
                return _load(path)
            result = compute()
            write_text_atomic(path, json.dumps([[asdict(c) for c in cs] for cs in result]))
            return result


def _load(path: Path) -> List[List[Completion]]:
    return [[Completion(**c) for c in cs] for cs in json.loads(path.read_text())]
