"""Think: a model writes n solutions to every train question (or the dataset's own solutions stand in
for them), each verified against the ground truth. Eval samples through the same `sample`.

Writes `round_<i>/think/samples.jsonl` (`SampleRow`s) and `prompts.jsonl` (`PromptRow`s: the exact
text each question's prompt was, chat template included).
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import List, Sequence, Tuple, TypedDict

from tpt.backends import Sampling, generator_settings, make_generator
from tpt.cell import Cell
from tpt.io import write_jsonl
from tpt.lineage import ModelRef
from tpt.models import load_tokenizer
from tpt.prompt import encode, render
from tpt.tasks import Problem, reference_text


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


# source.kind -> who writes the think samples (their `origin`); mixed adds human solutions at prune.
SOURCES = {"self": "self", "distill": "teacher", "human": "human", "mixed": "self"}


def sample_row(p: Problem, sample: int, text: str, n_tokens: int, origin: str | None = None) -> SampleRow:
    row = SampleRow(qid=p.id, sample=sample, question=p.question, answer=p.answer, completion=text, n_tokens=n_tokens)
    if origin is not None:
        row["origin"] = origin
    return row


def verified(cell: Cell, rows: List[SampleRow], problems: Sequence[Problem], desc: str) -> List[SampleRow]:
    """`rows` with each one's verdict (code runs in the sandbox's worker pool)."""
    verdicts = cell.verifier.verify([(p, r["completion"]) for p, r in zip(problems, rows)], desc=desc)
    return [{**r, **v} for r, v in zip(rows, verdicts)]


def sample(cell: Cell, model: ModelRef, problems: Sequence[Problem], stage_cfg, desc: str,
           origin: str | None = None) -> Tuple[List[SampleRow], List[PromptRow]]:
    """`stage_cfg.n` verified samples of `model` per problem, through the shared generation cache,
    and the prompts they answered; `stage_cfg` is the stage's sampling config (`think` or `eval`)."""
    sampling = Sampling.from_cfg(stage_cfg, cell.kind, cell.cfg.task.strict_match)
    tokenizer = load_tokenizer(model.path, model.revision)
    texts = render(tokenizer, [cell.prompt(p.question) for p in problems])
    prompt_ids = encode(tokenizer, texts)

    def generate():
        gen = make_generator(cell.cfg, model.path, model.revision, stage_cfg.batch_size, tokenizer)
        try:
            return gen.generate(prompt_ids, sampling, keys=[p.id for p in problems], desc=desc)
        finally:
            gen.close()
            gc.collect()

    if cell.cache is None:
        completions = generate()
    else:
        key = cell.cache.key(model.identity, prompt_ids, sampling, generator_settings(cell.cfg, stage_cfg.batch_size))
        completions = cell.cache.get_or_compute(key, generate, desc=desc)
    pairs = []
    for p, comps in zip(problems, completions):
        if len(comps) != sampling.n:
            raise RuntimeError(f"{desc}: expected {sampling.n} samples for {p.id}, got {len(comps)}")
        pairs += [(p, j, c) for j, c in enumerate(comps)]
    rows = [sample_row(p, j, c.text, c.n_tokens, origin) for p, j, c in pairs]
    prompts = [PromptRow(qid=p.id, prompt=t) for p, t in zip(problems, texts)]
    return verified(cell, rows, [p for p, _, _ in pairs], desc), prompts


def human_rows(cell: Cell) -> List[SampleRow]:
    """The train questions' own solutions as samples, verified like any other (code problems without
    a Python solution have none). The same every round: verified once per cell."""
    def compute():
        keep = cell.cfg.source.keep_annotations
        with_solution = [p for p in cell.data.train if p.solution]
        rows = [sample_row(p, 0, reference_text(p, cell.kind, keep), 0, "human") for p in with_solution]
        return verified(cell, rows, with_solution, desc="human solutions")

    return cell.memo("human_rows", compute)


def run(cell: Cell, i: int, out: Path) -> None:
    """Round i's samples: M_{i-1}'s (self, mixed), the teacher's (distill) or the human ones."""
    source, desc = cell.cfg.source.kind, f"round {i} think"
    if source == "human":  # nothing is generated, so no prompt is sent
        write_jsonl(out / "samples.jsonl", human_rows(cell))
        return
    if source == "distill":
        rows, prompts = sample(cell, cell.teacher, cell.data.train, cell.cfg.think, desc + " (teacher)", SOURCES[source])
    else:
        rows, prompts = sample(cell, cell.models.model(i - 1), cell.data.train, cell.cfg.think, desc, SOURCES[source])
    write_jsonl(out / "samples.jsonl", rows)
    write_jsonl(out / "prompts.jsonl", prompts)
