"""One of several processes asking a tpt cache for the same entry at once, for tests/test_durability.py:

    python -m tests.cache_writer KIND LOCKS ROOT GATE WRITERS INDEX

KIND: generation | verdict | checkpoint | conversion. LOCKS says what the filesystem's file locks do:
`working` (this machine's), `refused` (every lock fails with ENOLCK, as on NFS without a lock daemon),
`node-local` (every lock is granted at once, as when the writers sit on different nodes of a
filesystem whose locks do not reach across nodes) or `filesystem` (whatever ROOT's filesystem does:
tests/test_clusterfs.py's mount refuses them). Every writer waits at GATE (a folder) until all
WRITERS have arrived, so they really ask at once; one that computes waits there again until the
others have had the chance to compute too (without a working lock they all do). Prints one JSON
line: what the cache returned and whether this process computed it.
"""

import errno
import json
import os
import sys
import time
from pathlib import Path


def patch_locks(mode: str) -> None:
    import filelock

    if mode == "refused":

        def acquire(self, *args, **kwargs):
            raise OSError(errno.ENOLCK, "No locks available")

        filelock.FileLock.acquire = acquire
    elif mode == "node-local":
        filelock.FileLock.acquire = lambda self, *args, **kwargs: None
        filelock.FileLock.release = lambda self, *args, **kwargs: None


def gate(folder: Path, name: str, writers: int, timeout: float = 120.0) -> None:
    """Arrive at the gate and wait until `writers` have arrived (or `timeout` passed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}-{os.getpid()}").touch()
    deadline = time.time() + timeout
    while len(list(folder.glob(f"{name}-*"))) < writers and time.time() < deadline:
        time.sleep(0.01)


def main(kind: str, locks: str, root: str, gate_dir: str, writers: str, index: str) -> None:
    patch_locks(locks)
    root, gates, n, i = Path(root), Path(gate_dir), int(writers), int(index)
    computed = []

    def compute(value):
        computed.append(True)
        if locks != "working":  # all of them compute: wait until they are all computing
            gate(gates, "computing", n, timeout=30.0)
        time.sleep(0.2)
        return value

    gate(gates, "start", n)
    if kind == "generation":
        from tpt.backends.base import Completion
        from tpt.backends.cache import GenerationCache

        got = GenerationCache(root / "generations").get_or_compute(
            "k" * 64, lambda: compute([[Completion(text=f"writer {i}", n_tokens=i)] * 3])
        )
        out = [[c.text for c in cs] for cs in got]
    elif kind == "verdict":
        from tpt.cache import KeyedStore

        out = KeyedStore(root / "verdicts", "verdicts").get_or_compute(
            "v" * 64, lambda: compute({"writer": i, "passed": [True] * 5})
        )
    elif kind == "checkpoint":
        from tpt.cache import CheckpointCache

        cache = CheckpointCache(root / "trained")
        mine = root / f"run{i}" / "model"  # this writer's trained model: its own bytes
        mine.mkdir(parents=True)
        (mine / "model.safetensors").write_bytes(bytes([i]) * 1_000_000)
        (mine / "config.json").write_text(json.dumps({"writer": i}))
        computed.append(True)
        cache.store("c" * 64, mine, {"writer": i})
        fetched = cache.fetch("c" * 64, root / f"run{i}" / "fetched", "test")
        weights = root / f"run{i}" / "fetched" / "model.safetensors"  # none where the store was refused
        out = {"result": fetched, "weights": weights.read_bytes()[:1].hex() if fetched else None}
    elif kind == "conversion":
        os.environ["TPT_CACHE_DIR"] = str(root)
        from transformers import AutoModelForCausalLM

        import tpt.models as models

        original = AutoModelForCausalLM.from_pretrained

        def counted(*args, **kwargs):  # a conversion loads the GGUF: count them
            computed.append(True)
            return original(*args, **kwargs)

        AutoModelForCausalLM.from_pretrained = counted
        target = models.materialize_embedded("smollm2-135m-instruct")
        from tpt.io import manifest

        out = manifest(target)
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps({"value": out, "computed": bool(computed)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
