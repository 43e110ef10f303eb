"""A stage's samples: its finished chunks, the pending ones generated here (tpt/stages/generation.py)
or by a SLURM job array (tpt/stages/array.py), gathered in question order."""
from __future__ import annotations

import logging
from typing import List, Tuple

from tpt.cell import Cell
from tpt.models import load_tokenizer
from tpt.stages.array import fan_out
from tpt.stages.generation import Job, PromptRow, SampleRow, generate_chunks, plan, store_of

log = logging.getLogger(__name__)


def sample(cell: Cell, job: Job) -> Tuple[List[SampleRow], List[PromptRow]]:
    """`n` verified samples per question (n of cfg.<stage>), and the prompts they answered."""
    tokenizer = load_tokenizer(job.model.path, job.model.revision)
    p = plan(cell, job, tokenizer)
    store = store_of(cell, job)
    finished = {c: store.load(c, p.chunk_keys[c]) for c in range(len(p.bounds))}  # read once; generated ones below
    pending = [c for c, chunk in finished.items() if chunk is None]
    if len(pending) < len(p.bounds):
        log.info("%s: %d of %d chunks finished earlier", job.desc, len(p.bounds) - len(pending), len(p.bounds))
    if pending and job.settings(cell).array_tasks > 0:
        fan_out(cell, job, p, pending)
    elif pending:
        generate_chunks(cell, job, p, pending, tokenizer)
    rows: List[SampleRow] = []
    for c in range(len(p.bounds)):
        chunk = finished[c] if finished[c] is not None else store.load(c, p.chunk_keys[c])
        if chunk is None:
            raise RuntimeError(f"{job.desc}: chunk {c} is missing after generation")
        rows += chunk
    prompts = [PromptRow(qid=q.id, prompt=t) for q, t in zip(p.problems, p.texts)]
    return rows, prompts
