"""Where each round's training data comes from (`source=`, the paper's ablations): one object per
data source, owning what differs between them, so no other module asks which source it is.

- self: M_{i-1} thinks about the train questions (the paper's method);
- distill: a fixed teacher (`source.teacher`) thinks instead, every round;
- human: the dataset's own worked solutions, nothing generated;
- mixed: `source.human_size` human solutions plus self samples on other questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple


class SourceError(ValueError):
    """A source's settings that cannot work (tpt.validate reports it as a ConfigError)."""


def scaled(size: int, scale: float) -> int:
    """A data size times data.scale (at least one example): a miniature's sizes in the paper's ratios."""
    return max(1, round(size * scale))


@dataclass(frozen=True)
class Source:
    name: str
    # Who writes the think samples, and their `origin` in samples.jsonl: "self" (M_{i-1}), "teacher",
    # or None when nothing is generated (the human solutions are the samples).
    thinker: Optional[str]
    needs_teacher: bool = False  # source.teacher must name a model
    human_share: bool = False  # prune adds source.human_size human solutions to the self samples

    def sizes(self, cfg) -> Tuple[int, int]:
        """(examples drawn from the think samples, human solutions added) for one round, after data.scale."""
        size = scaled(cfg.data.size, cfg.data.scale)
        if not self.human_share:
            return size, 0
        human = scaled(cfg.source.human_size, cfg.data.scale)
        return size - human, human

    def check(self, cfg) -> None:
        """Raise SourceError for settings this source cannot run with."""
        if self.needs_teacher and not cfg.source.teacher:
            raise SourceError(
                f"source.teacher is required with source={self.name} (a hub id, local directory or embedded:<name>)"
            )
        if self.human_share:
            self_size, human = self.sizes(cfg)
            if human <= 0 or self_size <= 0:
                raise SourceError(
                    f"source.human_size must lie between 0 and data.size={cfg.data.size} (exclusive, "
                    f"after data.scale={cfg.data.scale}) with source={self.name} "
                    f"(got {cfg.source.human_size})"
                )

    def teacher_id(self, cfg) -> Tuple[Optional[str], Optional[str]]:
        """(model id, revision) of the teacher, or (None, None) when this source has none."""
        return (cfg.source.teacher, cfg.source.teacher_revision) if self.needs_teacher else (None, None)

    def miniature_settings(self) -> List[str]:
        """What `miniature=true` sets for this source (Hydra overrides, tpt.miniature). One model exists
        offline, so a teacher becomes the student's own model."""
        return ["source.teacher=${model.id}", "source.teacher_revision=null"] if self.needs_teacher else []


SOURCES = {
    s.name: s
    for s in (
        Source("self", thinker="self"),
        Source("distill", thinker="teacher", needs_teacher=True),
        Source("human", thinker=None),
        Source("mixed", thinker="self", human_share=True),
    )
}


def source_of(cfg) -> Source:
    return SOURCES[cfg.source.kind]


__all__ = ["SOURCES", "Source", "SourceError", "scaled", "source_of"]
