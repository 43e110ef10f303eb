"""Pruning rules (`pruning=<name>`, conf/pruning/<name>.yaml): which verified think samples a round
may train on, and which one of each question's is drawn. The paper's ablation is between `gt` (keep
what the ground truth calls correct) and `none` (keep everything); `soft` is its soft-positive rule
for code.

One class per rule, and everything about the rule lives in it: its parameters (a structured config
extending `PruningConfig`, which its YAML names), its per-sample test (`keeps`), its per-question
selection (`candidates`), the task kinds it applies to, and its label in reports and the plan. A
new rule is a class here, registered with `@rule`, plus its YAML: docs/design.md shows one.

`prune()` is the selection the prune stage runs (tpt/stages/prune.py only reads and writes files):
per question the unique samples the rule keeps, up to `data.per_question` of them drawn with a
seeded generator, then a seeded draw of `data.size` examples.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypedDict

from tpt.config import ConfigError, PruningConfig
from tpt.verify.verdict import Verdict

log = logging.getLogger(__name__)

Row = Mapping  # one sample of samples.jsonl (tpt.stages.generation.SampleRow): qid, completion, n_tokens, verdict


class PruningRule:
    """A pruning rule. Subclasses set the class attributes and override `keeps` (or `candidates`)."""

    name: ClassVar[str]  # pruning.strategy; the YAML is conf/pruning/<name>.yaml
    label: ClassVar[str]  # how reports, plots and the plan name it
    color: ClassVar[str] = "tab:blue"  # its bars in the paper report's figures
    kinds: ClassVar[Tuple[str, ...]] = ("math", "code")  # task kinds it applies to (tpt.verify.KINDS)
    # Keeps only samples the ground truth calls correct: the examples a round can reach are bounded by
    # how many questions the model solves (the plan estimates that from a solve rate).
    needs_correct: ClassVar[bool] = True
    settings: ClassVar[Type[PruningConfig]] = PruningConfig  # its parameters' structured config

    def __init__(self, cfg: Optional[PruningConfig] = None):
        self.cfg = cfg if cfg is not None else self.settings(strategy=self.name)

    def check(self, kind: str) -> None:
        """Raise ConfigError for parameters, or a task kind, this rule cannot prune with."""
        if kind not in self.kinds:
            raise ConfigError(
                f"invalid config: pruning.strategy {self.name} ({self.label}) prunes "
                f"{' and '.join(self.kinds)} tasks only (got a {kind} task)"
            )

    def keeps(self, sample: Row) -> bool:
        """Whether one sample may become a training example."""
        raise NotImplementedError

    def candidates(self, group: Sequence[Row]) -> List[Row]:
        """Of one question's samples, those it keeps (a rule that looks at the whole question, such as a
        vote, overrides this instead of `keeps`)."""
        return [s for s in group if self.keeps(s)]

    def select(self, group: Sequence[Row], rng: random.Random, per_question: int) -> List[Row]:
        """Up to `per_question` of the question's distinct kept completions, drawn with `rng`."""
        unique = list({s["completion"].strip(): s for s in self.candidates(group)}.values())
        return rng.sample(unique, min(per_question, len(unique))) if unique else []


RULES: Dict[str, Type[PruningRule]] = {}


def rule(cls: Type[PruningRule]) -> Type[PruningRule]:
    """Class decorator: register a rule under its name."""
    RULES[cls.name] = cls
    return cls


# ---- the rules ------------------------------------------------------------------------------------


@rule
class GroundTruth(PruningRule):
    """The paper's rule: math, the answer matches the gold; code, the program passes every test."""

    name, label, color = "gt", "ground truth", "tab:green"

    def keeps(self, sample: Row) -> bool:
        return Verdict.of(sample).correct


@rule
class NoPruning(PruningRule):
    """The paper's ablation: every sample may be trained on, right or wrong."""

    name, label, color = "none", "no pruning", "tab:red"
    needs_correct = False

    def keeps(self, sample: Row) -> bool:
        return True


@rule
class SoftPositive(PruningRule):
    """The paper's soft positives (Table 5): programs that pass at least one test."""

    name, label, color = "soft", "soft-positive", "tab:orange"
    kinds = ("code",)

    def keeps(self, sample: Row) -> bool:
        return bool(Verdict.of(sample).passed_some)


@dataclass
class MajorityConfig(PruningConfig):
    strategy: str = "majority"
    min_votes: int = 2  # the winning answer needs at least this many of the question's samples


@rule
class Majority(PruningRule):
    """Majority-vote agreement, no ground truth (self-consistency): keep the samples whose answer is the
    question's most common one, when it has at least `min_votes` votes and no other answer as many."""

    name, label, color = "majority", "majority vote", "tab:purple"
    kinds = ("math",)
    needs_correct = False
    settings = MajorityConfig

    def check(self, kind: str) -> None:
        super().check(kind)
        if self.cfg.min_votes < 1:
            raise ConfigError(f"invalid config: pruning.min_votes must be >= 1 (got {self.cfg.min_votes})")

    def candidates(self, group: Sequence[Row]) -> List[Row]:
        votes = Counter(p for p in (Verdict.of(s).pred for s in group) if p is not None).most_common(2)
        if not votes or votes[0][1] < self.cfg.min_votes or (len(votes) > 1 and votes[1][1] == votes[0][1]):
            return []
        return [s for s in group if Verdict.of(s).pred == votes[0][0]]


@dataclass
class LengthCapConfig(PruningConfig):
    strategy: str = "length_cap"
    max_tokens: int = 256  # generated tokens a kept solution may have at most


@rule
class LengthCap(PruningRule):
    """Ground truth, and short: correct samples of at most `max_tokens` generated tokens."""

    name, label, color = "length_cap", "correct and short", "tab:cyan"
    settings = LengthCapConfig

    def check(self, kind: str) -> None:
        super().check(kind)
        if self.cfg.max_tokens < 1:
            raise ConfigError(f"invalid config: pruning.max_tokens must be >= 1 (got {self.cfg.max_tokens})")

    def keeps(self, sample: Row) -> bool:
        return Verdict.of(sample).correct and sample.get("n_tokens", 0) <= self.cfg.max_tokens


# ---- selecting a round's examples ---------------------------------------------------------------------


def rule_of(pruning: PruningConfig) -> PruningRule:
    """The rule a cell's `pruning` node selects, with its parameters (tpt.validate has checked the name)."""
    return RULES[pruning.strategy](pruning)


class PruneStats(TypedDict, total=False):
    """prune/stats.json."""

    strategy: str
    samples: int  # think samples
    correct_samples: int
    questions: int
    questions_with_correct: int
    cut_samples: int  # think samples that stopped at think.max_new_tokens
    unique_correct: float  # distinct correct completions per question with a correct one
    kept_samples: int  # samples the rule keeps
    available: int  # questions with a kept sample: at most data.per_question examples each
    requested_size: int  # data.size
    size: int  # examples drawn this round
    human_size: int  # source=mixed: of which human solutions
    self_size: int
    accumulated_size: int  # data.accumulate: examples of this and earlier rounds


def by_question(samples: Sequence[Row]) -> "OrderedDict[str, List[Row]]":
    groups: "OrderedDict[str, List[Row]]" = OrderedDict()
    for s in samples:
        groups.setdefault(s["qid"], []).append(s)
    return groups


def kept_per_question(rule_: PruningRule, samples: Sequence[Row]) -> Dict[str, int]:
    """Per question with any, the distinct samples the rule keeps (what a round can draw from)."""
    counts = {q: len({s["completion"].strip() for s in rule_.candidates(g)}) for q, g in by_question(samples).items()}
    return {q: n for q, n in counts.items() if n}


def mean_unique_correct(groups) -> float:
    """Distinct correct completions (by text) per question that has a correct one: how varied the
    solutions the next round may train on are."""
    counts = [len({s["completion"].strip() for s in g if Verdict.of(s).correct}) for g in groups]
    solved = [c for c in counts if c]
    return sum(solved) / len(solved) if solved else 0.0


def prune(
    samples: Sequence[Row], rule_: PruningRule, size: int, seed: int, per_question: int = 1
) -> Tuple[List[Row], PruneStats]:
    """Samples carry `qid`, `completion` and their verdict. Returns the kept samples and stats: up to
    `per_question` unique kept samples of each question, then a seeded draw of `size` of them."""
    rng = random.Random(seed)
    groups = by_question(samples)
    one_per_question: List[Row] = []
    kept_samples = 0
    for group in groups.values():
        kept_samples += len(rule_.candidates(group))
        one_per_question += rule_.select(group, rng, per_question)

    available = len(one_per_question)
    if available < size:
        log.warning("prune: only %d examples available, fewer than data.size=%d; using all of them", available, size)
        chosen = one_per_question
    else:
        chosen = sorted(rng.sample(one_per_question, size), key=lambda s: s["qid"])
    stats = PruneStats(
        strategy=rule_.name,
        samples=len(samples),
        correct_samples=sum(Verdict.of(s).correct for s in samples),
        questions=len(groups),
        questions_with_correct=sum(any(Verdict.of(s).correct for s in g) for g in groups.values()),
        unique_correct=mean_unique_correct(groups.values()),
        kept_samples=kept_samples,
        available=available,
        requested_size=size,
        size=len(chosen),
    )
    return chosen, stats


__all__ = ["RULES", "GroundTruth", "PruneStats", "PruningRule", "kept_per_question", "prune", "rule", "rule_of"]
