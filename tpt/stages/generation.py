"""Generation for think and eval: a model's verified samples of a stage's questions, made in chunks.

Each chunk (`chunk_size` questions) is generated through the shared cache, verified, and written to
the stage's chunk folder (`round_<i>/.<stage>.chunks/`) in one atomic write. A killed or requeued
stage resumes from its finished chunks, and the stage's published files are byte-identical to an
uninterrupted run's: chunk boundaries, each question's random stream and each chunk's batches do
not depend on what ran before. Chunks are shared out among engine replicas (`backend.replicas`), or
among SLURM array tasks (`<stage>.array_tasks`, tpt/stages/array.py).

Writes nothing itself: returns `SampleRow`s and `PromptRow`s for the stage to publish.
"""
from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypedDict

from tqdm.auto import tqdm

from tpt.backends import Sampling, generator_settings, make_generator, replica_count
from tpt.cache import generation_key
from tpt.cell import Cell
from tpt.io import read_json, write_json
from tpt.lineage import ModelRef
from tpt.models import load_tokenizer
from tpt.prompt import encode, render
from tpt.tasks import Problem

log = logging.getLogger(__name__)


class SampleRow(TypedDict, total=False):
    """One sample of one question and its verdict (think/ and eval/ samples.jsonl)."""

    qid: str
    sample: int  # its index among the question's n samples
    question: str
    answer: str  # math: the gold number
    completion: str  # as kept: cut after its answer
    n_tokens: int  # generated tokens
    origin: str  # think only: self | teacher | human (who wrote it)
    # the verdict (tpt.verify): pred, correct, lenient_pred, lenient_correct; code adds passed_some,
    # verdict, tests_passed, tests_run, tests_total
    pred: str | None
    correct: bool
    lenient_pred: str | None
    lenient_correct: bool


class PromptRow(TypedDict):
    """One question's prompt as the model was given it (think/ and eval/ prompts.jsonl)."""

    qid: str
    prompt: str


def sample_row(p: Problem, sample: int, text: str, n_tokens: int, origin: str | None = None) -> SampleRow:
    row = SampleRow(qid=p.id, sample=sample, question=p.question, answer=p.answer, completion=text, n_tokens=n_tokens)
    if origin is not None:
        row["origin"] = origin
    return row


def verified(cell: Cell, rows: List[SampleRow], problems: Sequence[Problem], desc: str) -> List[SampleRow]:
    """`rows` with each one's verdict (code runs in the sandbox's worker pool)."""
    verdicts = cell.verifier.verify([(p, r["completion"]) for p, r in zip(problems, rows)], desc=desc)
    return [{**r, **v} for r, v in zip(rows, verdicts)]


@dataclass(frozen=True)
class Job:
    """One stage's generation: who samples which questions, how, and where its chunks go."""

    stage: str  # think | eval
    round: int
    model: ModelRef
    problems: Sequence[Problem]
    stage_cfg: object  # the stage's sampling config (cfg.think or cfg.eval)
    desc: str
    origin: Optional[str] = None


class ChunkStore:
    """A stage's finished chunks: `<index>.json` holding the chunk's key and its verified rows."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, index: int) -> Path:
        return self.folder / f"{index:05d}.json"

    def load(self, index: int, key: str) -> Optional[List[SampleRow]]:
        """The chunk's rows, if it finished for this very key (same model, prompts, sampling)."""
        path = self.path(index)
        if not path.is_file():
            return None
        chunk = read_json(path)
        return chunk["rows"] if chunk.get("key") == key else None

    def save(self, index: int, key: str, rows: List[SampleRow], tokens: int) -> None:
        write_json(self.path(index), {"key": key, "tokens": tokens, "rows": rows})


@dataclass(frozen=True)
class Plan:
    """A job's prompts and chunks."""

    sampling: Sampling
    texts: List[str]  # rendered prompts
    ids: List[List[int]]
    keys: List[str]  # question ids: each question's random stream
    bounds: List[Tuple[int, int]]  # chunk -> [start, end) of the questions
    chunk_keys: List[str]  # chunk -> its generation key (cache, and the check that a stored chunk still fits)


def plan(cell: Cell, job: Job, tokenizer) -> Plan:
    sampling = Sampling.from_cfg(job.stage_cfg, cell.kind, cell.cfg.task.strict_match)
    texts = render(tokenizer, [cell.prompt(p.question) for p in job.problems])
    ids = encode(tokenizer, texts)
    keys = [p.id for p in job.problems]
    size = job.stage_cfg.chunk_size
    bounds = [(s, min(s + size, len(ids))) for s in range(0, len(ids), size)]
    settings = generator_settings(cell.cfg, job.stage_cfg.batch_size)
    chunk_keys = [generation_key(job.model.identity, ids[s:e], keys[s:e], sampling, settings) for s, e in bounds]
    return Plan(sampling, texts, ids, keys, bounds, chunk_keys)


def store_of(cell: Cell, job: Job) -> ChunkStore:
    return ChunkStore(cell.run.stage(job.round, job.stage).chunks)


def sample(cell: Cell, job: Job) -> Tuple[List[SampleRow], List[PromptRow]]:
    """`job.stage_cfg.n` verified samples per question, and the prompts they answered: from the
    finished chunks, the rest generated here (or by SLURM array tasks)."""
    tokenizer = load_tokenizer(job.model.path, job.model.revision)
    p = plan(cell, job, tokenizer)
    store = store_of(cell, job)
    finished = {c: store.load(c, p.chunk_keys[c]) for c in range(len(p.bounds))}  # read once; generated ones below
    pending = [c for c, chunk in finished.items() if chunk is None]
    if len(pending) < len(p.bounds):
        log.info("%s: %d of %d chunks finished earlier", job.desc, len(p.bounds) - len(pending), len(p.bounds))
    if pending and job.stage_cfg.array_tasks > 0:
        from tpt.stages.array import fan_out

        fan_out(cell, job, p, pending)
    elif pending:
        generate_chunks(cell, job, p, pending, tokenizer)
    rows: List[SampleRow] = []
    for c in range(len(p.bounds)):
        chunk = finished[c] if finished[c] is not None else store.load(c, p.chunk_keys[c])
        if chunk is None:
            raise RuntimeError(f"{job.desc}: chunk {c} is missing after generation")
        rows += chunk
    prompts = [PromptRow(qid=q.id, prompt=t) for q, t in zip(job.problems, p.texts)]
    return rows, prompts


def generate_chunks(cell: Cell, job: Job, p: Plan, pending: Sequence[int], tokenizer=None) -> None:
    """Generate, verify and store the `pending` chunks, shared out among the backend's replicas."""
    store = store_of(cell, job)
    progress = Progress(job.desc, p, pending, lambda figures: cell.progress(f"round_{job.round}/{job.stage}", figures))
    replicas = min(replica_count(cell.cfg), len(pending))
    generators: Dict[int, object] = {}

    def generator(replica: int):
        if replica not in generators:  # loaded on first need: a stage all in the cache loads no model
            generators[replica] = make_generator(cell.cfg, job.model.path, job.model.revision,
                                                 job.stage_cfg.batch_size, tokenizer, replica=replica, replicas=replicas)
        return generators[replica]

    def one_chunk(c: int, replica: int) -> None:
        start, end = p.bounds[c]

        def compute():
            return generator(replica).generate(p.ids[start:end], p.sampling, keys=p.keys[start:end], desc=job.desc)

        completions = cell.cache.get_or_compute(p.chunk_keys[c], compute, desc=job.desc) if cell.cache else compute()
        questions = job.problems[start:end]
        pairs = []
        for q, comps in zip(questions, completions):
            if len(comps) != p.sampling.n:
                raise RuntimeError(f"{job.desc}: expected {p.sampling.n} samples for {q.id}, got {len(comps)}")
            pairs += [(q, j, comp) for j, comp in enumerate(comps)]
        rows = verified(cell, [sample_row(q, j, comp.text, comp.n_tokens, job.origin) for q, j, comp in pairs],
                        [q for q, _, _ in pairs], job.desc)
        tokens = sum(comp.n_tokens for _, _, comp in pairs)
        store.save(c, p.chunk_keys[c], rows, tokens)
        progress.chunk_done(end - start, tokens)

    try:
        if replicas <= 1:
            for c in pending:
                one_chunk(c, 0)
        else:
            _share_out(pending, replicas, one_chunk)
    finally:
        for gen in generators.values():
            gen.close()
        gc.collect()
        progress.close()


def _share_out(chunks: Sequence[int], replicas: int, work: Callable[[int, int], None]) -> None:
    """Each replica takes the next chunk as soon as it is free; the first error stops them all."""
    todo: "queue.Queue[int]" = queue.Queue()
    for c in chunks:
        todo.put(c)
    errors: List[BaseException] = []

    def worker(replica: int) -> None:
        while not errors:
            try:
                c = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(c, replica)
            except BaseException as e:  # re-raised in the stage's thread
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(r,), name=f"tpt-replica-{r}") for r in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


class Progress:
    """One bar per stage over its questions (chunks done, tokens/s, time left), a log line per chunk,
    and the same figures to `report` (W&B's run summary) as they come."""

    def __init__(self, desc: str, p: Plan, pending: Sequence[int], report: Callable[[dict], None]):
        self.desc, self.report = desc, report
        self.chunks_total, self.chunks_done = len(p.bounds), len(p.bounds) - len(pending)
        self.questions_left = sum(p.bounds[c][1] - p.bounds[c][0] for c in pending)
        self.tokens, self.start, self.lock = 0, time.perf_counter(), threading.Lock()
        self.bar = tqdm(total=self.questions_left, desc=desc, unit="q", dynamic_ncols=True)

    def chunk_done(self, questions: int, tokens: int) -> None:
        with self.lock:
            self.chunks_done += 1
            self.tokens += tokens
            self.questions_left -= questions
            elapsed = time.perf_counter() - self.start
            rate = self.tokens / max(elapsed, 1e-9)
            done_q = self.bar.n + questions
            eta = elapsed / done_q * self.questions_left if done_q else float("nan")
            self.bar.update(questions)
            self.bar.set_postfix(chunks=f"{self.chunks_done}/{self.chunks_total}", tok_s=f"{rate:.0f}")
            log.info("%s: %d/%d chunks done, %.0f tok/s, about %.0f s left", self.desc, self.chunks_done,
                     self.chunks_total, rate, eta)
            self.report({"chunks_done": self.chunks_done, "chunks": self.chunks_total,
                                    "tokens_per_s": rate, "seconds_left": eta})

    def close(self) -> None:
        self.bar.close()
