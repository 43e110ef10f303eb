"""Which model is M_i in a run directory, and what decides its outputs (its identity in the
caches): the base model's files, then each round's training examples (as the trainer gets them,
prompt included) and settings."""

from __future__ import annotations

from typing import Callable, Dict, Optional

from tpt.cache import lineage, model_fingerprint
from tpt.io import read_json, read_jsonl
from tpt.models import ModelRef
from tpt.rundir import RunDir
from tpt.training.sft import to_conversations


def base_model(model_id: str, path: str, revision: Optional[str]) -> ModelRef:
    return ModelRef(path, revision, lambda: model_fingerprint(model_id, path, revision))


class Lineage:
    """M_0 is the base model; M_i is what round i's train stage saved, or M_{i-1} when that round
    kept no data and skipped training."""

    def __init__(self, rundir: RunDir, base: ModelRef, train_cfg: dict, prompt: Callable[[str], list]):
        self.rundir, self.base, self.train_cfg, self.prompt = rundir, base, train_cfg, prompt
        self._models: Dict[int, ModelRef] = {0: base}

    def trained_round(self, i: int) -> int:
        """The latest round <= i whose train stage produced a model (0: the base model)."""
        while i > 0 and read_json(self.rundir.stage(i, "train") / "result.json").get("skipped"):
            i -= 1
        return i

    def drop_superseded(self, i: int) -> None:
        """train.keep=last: delete the weights of every trained model before M_i, once M_i exists (their
        result.json stays; the checkpoint cache keeps its own links). Nothing later needs them: round i's
        think, the last reader of M_{i-1}, is finished."""
        keep = self.trained_round(i)
        for j in range(1, i + 1):
            if j != keep:
                self.rundir.stage(j, "train").drop("model")

    def model(self, i: int) -> ModelRef:
        """M_i."""
        r = self.trained_round(i)
        if r not in self._models:
            self._models[r] = ModelRef(
                str(self.rundir.stage(r, "train") / "model"), None, lambda: self.trained_identity(r)
            )
        return self._models[r]

    def trained_identity(self, i: int, examples: Optional[list] = None) -> str:
        """The identity of what round i's train stage makes: M_{i-1}'s, round i's examples as the
        trainer gets them (built from its data unless given), the settings."""
        if examples is None:
            examples = to_conversations(read_jsonl(self.rundir.stage(i, "prune") / "train.jsonl"), self.prompt)
        return lineage(self.model(i - 1).identity, examples, self.train_cfg)
