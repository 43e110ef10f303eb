"""What a verifier says of one completion, as typed fields: the contract between the verifiers
(tpt.verify.math, tpt.verify.code), which write these fields into every sample row, and their
readers (the pruning rules, tpt.pruning). Rows are stored flat in samples.jsonl; `Verdict.of(row)`
reads them back, so a reader names a field, never a string key of its own."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Mapping, Optional


@dataclass(frozen=True)
class Verdict:
    """Every kind's verdict: the judged answer and whether it is right."""

    pred: Optional[str] = None  # math: the answer the rule extracted; code: the program's id
    correct: bool = False  # math: the answer matches the gold; code: every test passed
    lenient_pred: Optional[str] = None
    lenient_correct: bool = False  # math: the last number matches; code: some test passed
    passed_some: Optional[bool] = None  # code only: at least one test passed (a soft positive); None for math

    @classmethod
    def of(cls, row: Mapping) -> "Verdict":
        """The verdict fields of a sample row (fields a row lacks take their defaults)."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


@dataclass(frozen=True)
class CodeVerdict(Verdict):
    """A program's verdict on its problem's tests (tpt.verify.code)."""

    passed_some: Optional[bool] = False
    verdict: str = "passed"  # passed | wrong_answer | timeout | memory | ... | no_code | syntax_error
    tests_passed: int = 0
    tests_run: int = 0
    tests_total: int = 0
    budget_spent: bool = False  # tests left unrun: task.code.program_budget_s was spent

    def as_row(self) -> dict:
        return asdict(self)
