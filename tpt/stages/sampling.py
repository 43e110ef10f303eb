"""A stage's samples: its finished chunks, the pending ones generated here (tpt/stages/generation.py)
or by a SLURM job array (tpt/stages/array.py), gathered in question order, and what they cost."""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

from tpt.cell import Cell
from tpt.models import load_tokenizer
from tpt.stages.array import fan_out
from tpt.stages.generation import Job, PromptRow, SampleRow, generate_chunks, plan, store_of

log = logging.getLogger(__name__)


def sample(cell: Cell, job: Job) -> Tuple[List[SampleRow], List[PromptRow], Dict]:
    """`n` verified samples per question (n of cfg.<stage>), the prompts they answered, and what the
    stage's chunks cost (`stage_cost`)."""
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
    spent: List[Tuple[Optional[dict], bool]] = []
    for c in range(len(p.bounds)):
        chunk = finished[c] if finished[c] is not None else store.load(c, p.chunk_keys[c])
        if chunk is None:
            raise RuntimeError(f"{job.desc}: chunk {c} is missing after generation")
        rows += chunk["rows"]
        spent.append((chunk.get("spent"), finished[c] is not None))
    prompts = [PromptRow(qid=q.id, prompt=t) for q, t in zip(p.problems, p.texts)]
    return rows, prompts, stage_cost(spent)


def stage_cost(chunks: List[Tuple[Optional[dict], bool]]) -> Dict:
    """A stage's cost.json from its chunks' `spent` (tpt.stages.generation.ChunkSpent) and whether each
    had finished before this attempt began: the seconds all its chunks took wherever they ran (a job
    array's tasks, an attempt that was killed), tokens prompted and generated, and what came from
    where instead of being computed: chunks finished by an earlier attempt, generations and code
    verdicts from the caches, with the seconds their computing had taken (`*_saved_s`)."""
    cost = {
        "chunks": len(chunks),
        "chunk_seconds": 0.0,
        "prompt_tokens": 0,
        "generated_tokens": 0,
        "chunks_resumed": 0,
        "chunks_resumed_saved_s": 0.0,
        "generations_reused": 0,
        "generations_saved_s": 0.0,
        "verdicts_reused": 0,
        "verdicts_saved_s": 0.0,
    }
    for spent, resumed in chunks:
        spent = spent or {}  # a chunk of a tpt before cost accounting: counted, not measured
        cost["chunk_seconds"] += spent.get("seconds", 0.0)
        cost["prompt_tokens"] += spent.get("prompt_tokens", 0)
        cost["generated_tokens"] += spent.get("generated_tokens", 0)
        if resumed:
            cost["chunks_resumed"] += 1
            cost["chunks_resumed_saved_s"] += spent.get("seconds", 0.0)
        for kind in ("generations", "verdicts"):
            if spent.get(f"{kind}_saved_s") is not None:
                cost[f"{kind}_reused"] += 1
                cost[f"{kind}_saved_s"] += spent[f"{kind}_saved_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in cost.items()}


def add_costs(a: Dict, b: Dict) -> Dict:
    """Two cost.json figures of one stage (think's resampled batches) added up."""
    return {k: round(a.get(k, 0) + b.get(k, 0), 3) for k in a.keys() | b.keys()}
