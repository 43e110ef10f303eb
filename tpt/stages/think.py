"""Think: a model writes n solutions to every train question (or the dataset's own solutions stand in
for them), each verified against the ground truth (tpt/stages/generation.py: in chunks, resumable).

Writes `round_<i>/think/samples.jsonl` (`SampleRow`s) and `prompts.jsonl` (`PromptRow`s: the exact
text each question's prompt was, chat template included).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from tpt.cell import Cell
from tpt.io import write_jsonl
from tpt.stages.generation import Job, SampleRow, sample, sample_row, verified
from tpt.tasks import reference_text

# source.kind -> who writes the think samples (their `origin`); mixed adds human solutions at prune.
SOURCES = {"self": "self", "distill": "teacher", "human": "human", "mixed": "self"}


def human_rows(cell: Cell) -> List[SampleRow]:
    """The train questions' own solutions as samples, verified like any other (code problems without
    a Python solution have none). The same every round: verified once per cell."""
    def compute():
        keep = cell.cfg.source.keep_annotations
        with_solution = [p for p in cell.data.train if p.solution]
        rows = [sample_row(p, 0, reference_text(p, cell.kind, keep), 0, "human") for p in with_solution]
        return verified(cell, rows, with_solution, desc="human solutions")

    return cell.memo("human_rows", compute)


def job(cell: Cell, i: int) -> Optional[Job]:
    """What round i's think generates: M_{i-1}'s samples (self, mixed) or the teacher's (distill);
    None for source=human, which generates nothing."""
    source, desc = cell.cfg.source.kind, f"round {i} think"
    if source == "human":
        return None
    if source == "distill":
        return Job("think", i, cell.teacher, cell.data.train, cell.cfg.think, desc + " (teacher)", SOURCES[source])
    return Job("think", i, cell.models.model(i - 1), cell.data.train, cell.cfg.think, desc, SOURCES[source])


def run(cell: Cell, i: int, out: Path) -> None:
    work = job(cell, i)
    if work is None:  # nothing is generated, so no prompt is sent
        write_jsonl(out / "samples.jsonl", human_rows(cell))
        return
    rows, prompts = sample(cell, work)
    write_jsonl(out / "samples.jsonl", rows)
    write_jsonl(out / "prompts.jsonl", prompts)
