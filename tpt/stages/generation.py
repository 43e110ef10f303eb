"""Generation for think and eval, the core: a job's prompts and chunks, and its pending chunks
generated, verified and stored, shared out among engine replicas (`backend.replicas`).

Each chunk (`chunk_size` questions) is generated through the shared cache, verified, and written to
the stage's chunk folder (`round_<i>/.<stage>.chunks/`) in one atomic write. A killed or requeued
stage resumes from its finished chunks, and the stage's published files are byte-identical to an
uninterrupted run's: chunk boundaries, each question's random stream and each chunk's batches do
not depend on what ran before. tpt/stages/sampling.py gathers a stage's chunks (generated here or
by SLURM array tasks, tpt/stages/array.py); nothing here writes a stage's files.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypedDict

from omegaconf import OmegaConf
from tqdm.auto import tqdm

from tpt.backends import Sampling, generator_settings, make_generator, replica_count
from tpt.backends.cache import generation_key
from tpt.cache import digest
from tpt.cell import Cell
from tpt.io import Damaged, read_json, write_json
from tpt.models import ModelRef
from tpt.prompt import encode, render
from tpt.tasks import Problem, reference_text
from tpt.verify import answer_of

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
    second_correct: bool | None  # math: math-verify's verdict on the whole completion (None: timed out)


def cut_count(rows: Sequence[SampleRow], max_new_tokens: int) -> int:
    """Samples that stopped at the token limit (their answer, if any, may be cut off)."""
    return sum(r["n_tokens"] >= max_new_tokens for r in rows)


class PromptRow(TypedDict):
    """One question's prompt as the model was given it (think/ and eval/ prompts.jsonl)."""

    qid: str
    prompt: str


def sample_row(p: Problem, sample: int, text: str, n_tokens: int, origin: str | None = None) -> SampleRow:
    row = SampleRow(qid=p.id, sample=sample, question=p.question, answer=p.answer, completion=text, n_tokens=n_tokens)
    if origin is not None:
        row["origin"] = origin
    return row


def verified(
    cell: Cell, rows: List[SampleRow], problems: Sequence[Problem], desc: str, reused: Optional[List[float]] = None
) -> List[SampleRow]:
    """`rows` with each one's verdict (code runs in the sandbox's worker pool; verdicts taken from
    the cache append the seconds their judging took to `reused`)."""
    verdicts = cell.verifier.verify([(p, r["completion"]) for p, r in zip(problems, rows)], desc=desc, reused=reused)
    return [{**r, **v} for r, v in zip(rows, verdicts)]


def human_samples(cell: Cell) -> List[SampleRow]:
    """The train questions' own solutions as samples, verified like any other (code problems without
    a Python solution have none). The same every round: verified once per cell."""

    def compute():
        keep = cell.cfg.source.keep_annotations
        with_solution = [p for p in cell.data.train if p.solution]
        rows = [sample_row(p, 0, reference_text(p, cell.kind, keep), 0, "human") for p in with_solution]
        return verified(cell, rows, with_solution, desc="human solutions")

    return cell.memo("human_samples", compute)


@dataclass(frozen=True)
class Job:
    """One stage's generation: who samples which questions (sampled as cfg.<stage> says), and where
    its chunks go. Small enough to send to a SLURM array task: the questions are named by their split."""

    stage: str  # think | eval: the config node of its sampling settings
    round: int
    model: ModelRef
    split: str  # train | eval: which of the cell's questions (tpt.tasks.TaskData)
    desc: str
    origin: Optional[str] = None
    # A further batch of samples (data.shortfall=resample): its own seed and chunks, on the questions named
    batch: int = 0
    only: Tuple[str, ...] = ()  # question ids; () = all of the split

    def settings(self, cell: Cell):
        stage = cell.cfg[self.stage]
        if not self.batch:
            return stage
        settings = OmegaConf.create(OmegaConf.to_container(stage, resolve=True))
        settings.seed = stage.seed + 1000 * self.batch  # other random streams for every question
        return settings

    def problems(self, cell: Cell) -> Sequence[Problem]:
        problems = getattr(cell.data, self.split)
        if not self.only:
            return problems
        wanted = set(self.only)
        return [p for p in problems if p.id in wanted]


class ChunkSpent(TypedDict):
    """What one chunk cost where it was made (a chunk file's `spent`; tpt.stages.sampling adds a
    stage's up in its cost.json)."""

    seconds: float  # wall seconds: generating (or reading the cache) and verifying
    prompt_tokens: int  # the prompts' token ids given to the engine, each prompt once for its n samples
    generated_tokens: int  # completion tokens, counted by the engine
    generations_saved_s: Optional[float]  # taken from the generation cache: the seconds generating took
    verdicts_saved_s: Optional[float]  # code verdicts taken from the verdict cache: the seconds judging took


class ChunkStore:
    """A stage's finished chunks: `<index>.json` holding the chunk's key, its verified rows and what
    it cost (`ChunkSpent`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, index: int) -> Path:
        return self.folder / f"{index:05d}.json"

    def load(self, index: int, key: str) -> Optional[dict]:
        """The chunk (`rows`, `spent`), if it finished for this very key (same model, prompts, sampling)
        and is whole: a truncated or altered chunk file is named, removed, and generated again."""
        path = self.path(index)
        if not path.is_file():
            return None
        try:
            chunk = read_json(path)
            body = {k: chunk[k] for k in ("key", "spent", "rows")}
            if "sha256" in chunk and digest(body) != chunk["sha256"]:  # chunks of an older tpt carry none
                raise Damaged(f"{path} is damaged: altered (sha256 differs from the one written)")
        except (Damaged, KeyError, TypeError) as e:
            log.warning("%s; generating that chunk again", e if isinstance(e, Damaged) else f"{path} is damaged ({e})")
            path.unlink(missing_ok=True)
            return None
        return chunk if chunk["key"] == key else None

    def save(self, index: int, key: str, rows: List[SampleRow], spent: ChunkSpent) -> None:
        body = {"key": key, "spent": spent, "rows": rows}
        write_json(self.path(index), {**body, "sha256": digest(body)})


@dataclass(frozen=True)
class Plan:
    """A job's prompts and chunks."""

    problems: Sequence[Problem]
    sampling: Sampling
    texts: List[str]  # rendered prompts
    ids: List[List[int]]
    keys: List[str]  # question ids: each question's random stream
    bounds: List[Tuple[int, int]]  # chunk -> [start, end) of the questions
    chunk_keys: List[str]  # chunk -> its generation key (cache, and the check that a stored chunk still fits)


def plan(cell: Cell, job: Job, tokenizer) -> Plan:
    problems = job.problems(cell)
    stage = job.settings(cell)
    sampling = Sampling.from_cfg(stage, cell.kind, answer_of(cell.cfg.task))  # code: unused, kept in the cache key
    texts = render(tokenizer, [cell.prompt(p.question) for p in problems])
    ids = encode(tokenizer, texts)
    keys = [p.id for p in problems]
    size = stage.chunk_size
    bounds = [(s, min(s + size, len(ids))) for s in range(0, len(ids), size)]
    settings = generator_settings(cell.cfg, stage.batch_size)
    chunk_keys = [generation_key(job.model.identity, ids[s:e], keys[s:e], sampling, settings) for s, e in bounds]
    return Plan(problems, sampling, texts, ids, keys, bounds, chunk_keys)


def store_of(cell: Cell, job: Job) -> ChunkStore:
    chunks = cell.rundir.stage(job.round, job.stage).chunks
    return ChunkStore(chunks / f"batch_{job.batch}" if job.batch else chunks)


def generate_chunks(cell: Cell, job: Job, p: Plan, pending: Sequence[int], tokenizer=None) -> None:
    """Generate, verify and store the `pending` chunks, shared out among the backend's replicas."""
    store = store_of(cell, job)
    progress = Progress(job.desc, p, pending, lambda figures: cell.progress(f"round_{job.round}/{job.stage}", figures))
    replicas = min(replica_count(cell.cfg), len(pending))
    generators: Dict[int, object] = {}

    def generator(replica: int):
        if replica not in generators:  # loaded on first need: a stage all in the cache loads no model
            generators[replica] = make_generator(
                cell.cfg,
                job.model.path,
                job.model.revision,
                job.settings(cell).batch_size,
                tokenizer,
                replica=replica,
                replicas=replicas,
            )
        return generators[replica]

    def one_chunk(c: int, replica: int) -> None:
        start, end = p.bounds[c]
        began = time.perf_counter()

        def compute():
            return generator(replica).generate(p.ids[start:end], p.sampling, keys=p.keys[start:end], desc=job.desc)

        if cell.cache:
            completions, generations_saved = cell.cache.fetch_or_compute(p.chunk_keys[c], compute, desc=job.desc)
        else:
            completions, generations_saved = compute(), None
        questions = p.problems[start:end]
        pairs = []
        for q, comps in zip(questions, completions):
            if len(comps) != p.sampling.n:
                raise RuntimeError(f"{job.desc}: expected {p.sampling.n} samples for {q.id}, got {len(comps)}")
            pairs += [(q, j, comp) for j, comp in enumerate(comps)]
        verdicts_saved: List[float] = []
        rows = verified(
            cell,
            [sample_row(q, j, comp.text, comp.n_tokens, job.origin) for q, j, comp in pairs],
            [q for q, _, _ in pairs],
            job.desc,
            verdicts_saved,
        )
        tokens = sum(comp.n_tokens for _, _, comp in pairs)
        store.save(
            c,
            p.chunk_keys[c],
            rows,
            ChunkSpent(
                seconds=round(time.perf_counter() - began, 3),
                prompt_tokens=sum(len(ids) for ids in p.ids[start:end]),
                generated_tokens=tokens,
                generations_saved_s=generations_saved,
                verdicts_saved_s=sum(verdicts_saved) if verdicts_saved else None,
            ),
        )
        progress.chunk_done(end - start, tokens)

    try:
        if replicas <= 1:
            for c in pending:
                one_chunk(c, 0)
        else:
            _share_out(pending, replicas, one_chunk)
    finally:
        for gen in generators.values():
            gen.close()  # each frees its model's memory (tpt.backends.hf.HFGenerator.close)
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
            log.info(
                "%s: %d/%d chunks done, %.0f tok/s, about %.0f s left",
                self.desc,
                self.chunks_done,
                self.chunks_total,
                rate,
                eta,
            )
            self.report(
                {
                    "chunks_done": self.chunks_done,
                    "chunks": self.chunks_total,
                    "tokens_per_s": rate,
                    "seconds_left": eta,
                }
            )

    def close(self) -> None:
        self.bar.close()
