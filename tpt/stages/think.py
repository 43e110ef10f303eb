"""Think: a model writes n solutions to every train question (or the dataset's own solutions stand in
for them), each verified against the ground truth (tpt/stages/generation.py: in chunks, resumable).

Writes `round_<i>/think/samples.jsonl` (`SampleRow`s) and `prompts.jsonl` (`PromptRow`s: the exact
text each question's prompt was, chat template included).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from tpt.cell import Cell
from tpt.io import write_jsonl
from tpt.stages.generation import Job, human_samples
from tpt.stages.sampling import sample


def job(cell: Cell, i: int) -> Optional[Job]:
    """What round i's think generates: M_{i-1}'s samples, or the teacher's; None when the cell's
    source generates nothing (its samples are the human solutions)."""
    thinker = cell.source.thinker
    if thinker is None:
        return None
    if thinker == "teacher":
        return Job("think", i, cell.teacher, "train", f"round {i} think (teacher)", thinker)
    return Job("think", i, cell.models.model(i - 1), "train", f"round {i} think", thinker)


def run(cell: Cell, i: int, out: Path) -> None:
    work = job(cell, i)
    if work is None:  # nothing is generated, so no prompt is sent
        write_jsonl(out / "samples.jsonl", human_samples(cell))
        return
    rows, prompts = sample(cell, work)
    write_jsonl(out / "samples.jsonl", rows)
    write_jsonl(out / "prompts.jsonl", prompts)
