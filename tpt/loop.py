"""The Think -> Prune -> Train -> Eval loop of one experiment cell.

round 0: eval(M0)
round i: think(M_{i-1}) -> prune -> train(M_{i-1} -> M_i) -> eval(M_i)

Each stage lives in `<run_dir>/round_<i>/<stage>/` and is skipped when already finished, so
rerunning the same command resumes an interrupted run. Everything that can be checked without
compute (config, task data, model id, the run directory's earlier config) is checked first.
"""
from __future__ import annotations

import contextlib
from collections import Counter
import functools
import gc
import logging
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from tpt import models
from tpt.cache import GenerationCache, lineage, model_fingerprint
from tpt.config import ConfigError, validate
from tpt.io import read_json, read_jsonl, write_json, write_jsonl, write_text_atomic
from tpt.metrics import diversity, summarize
from tpt.prompt import PromptBuilder
from tpt.prune import prune
from tpt.stages import Stage
from tpt.tasks import DataError, Problem, TaskData, load_task, reference_text
from tpt.think import BackendUnavailable, Sampling, check_backend, generator_from_config, generator_settings
from tpt.tracking import Tracker
from tpt.train import sft, to_conversations
from tpt.verify import make_verifier, task_kind

log = logging.getLogger(__name__)

class RunDirBusy(RuntimeError):
    """Another tpt process is running the same cell (e.g. a sweep resubmitted while its jobs run)."""


# Errors caused by the user's input (config, data files, model ids), reported without a traceback.
USER_ERRORS = (ConfigError, DataError, models.ModelError, RunDirBusy, BackendUnavailable)

# Keys that may change between reruns of one run directory without invalidating its stages.
RERUN_FREE_KEYS = ("rounds", "logger", "name", "cache", "cluster", "task.code.workers")


def sample_row(p: Problem, sample: int, text: str, n_tokens: int) -> dict:
    """One sample of one question, as think and eval save it (its verdict is added to it)."""
    return {"qid": p.id, "sample": sample, "question": p.question, "answer": p.answer,
            "completion": text, "n_tokens": n_tokens}


class Cell:
    """One experiment cell: its config, data and run directory."""

    def __init__(self, cfg: DictConfig, run_dir: Path, data: TaskData, base_model: str,
                 teacher: str | None = None):
        self.cfg = cfg
        self.teacher = teacher  # resolved teacher path/id with source=distill
        self.run_dir = Path(run_dir)
        self.data = data
        self.base_model = base_model
        self.prompt = PromptBuilder(cfg.task, data.few_shot, cfg.model.system_role)
        self.answer_format = task_kind(cfg.task.name)
        self.verifier = make_verifier(cfg.task)
        self.cache = None
        if cfg.cache.enabled:
            self.cache = GenerationCache(Path(cfg.cache.dir) if cfg.cache.dir else models.cache_dir() / "generations")
        self._identities: Dict[int, str] = {}

    # --- models -----------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """Fine-tuning learning rate: train.lr if set, else the model preset's (the paper's)."""
        return self.cfg.train.lr if self.cfg.train.lr is not None else self.cfg.model.lr

    def trained_round(self, round_idx: int) -> int:
        """The latest round <= round_idx whose train stage produced a model (0: the base model).
        A round whose pruning kept nothing skips training and carries the previous model on."""
        while round_idx > 0 and read_json(Stage(self.run_dir, round_idx, "train").dir / "result.json").get("skipped"):
            round_idx -= 1
        return round_idx

    def model_after(self, round_idx: int) -> str:
        """M_i: the base model, or the model the last training round up to i produced."""
        r = self.trained_round(round_idx)
        return self.base_model if r == 0 else str(Stage(self.run_dir, r, "train").dir / "model")

    def model_identity(self, round_idx: int) -> str:
        """What decides M_i's outputs: the base model's files, then each round's training lineage."""
        r = self.trained_round(round_idx)
        if r not in self._identities:
            if r == 0:
                ident = model_fingerprint(self.cfg.model.id, self.base_model, self.cfg.model.revision)
            else:
                ident = lineage(self.model_identity(r - 1), Stage(self.run_dir, r, "prune").dir / "train.jsonl",
                                OmegaConf.to_container(self.cfg.train, resolve=True), self.lr)
            self._identities[r] = ident
        return self._identities[r]

    @functools.cached_property
    def teacher_identity(self) -> str:
        src = self.cfg.source
        return model_fingerprint(src.teacher, self.teacher, src.teacher_revision)

    # --- shared by think and eval -------------------------------------------------------------
    def sample_and_verify(self, model_path: str, identity: Callable[[], str], revision: str | None,
                          problems: Sequence[Problem], sampling: Sampling, desc: str) -> List[dict]:
        """Sample a model on `problems` (through the shared cache) and verify every sample."""
        conversations = [self.prompt(p.question) for p in problems]

        def generate():
            gen = generator_from_config(self.cfg, model_path, revision)
            try:
                return gen.generate(conversations, sampling, desc=desc)
            finally:
                gen.close()
                gc.collect()

        if self.cache is None:
            completions = generate()
        else:
            key = self.cache.key(identity(), conversations, sampling, generator_settings(self.cfg))
            completions = self.cache.get_or_compute(key, generate, desc=desc)
        pairs = []
        for p, comps in zip(problems, completions):
            if len(comps) != sampling.n:
                raise RuntimeError(f"{desc}: expected {sampling.n} samples for {p.id}, got {len(comps)}")
            pairs += [(p, j, c) for j, c in enumerate(comps)]
        rows = [sample_row(p, j, c.text, c.n_tokens) for p, j, c in pairs]
        return self.verified(rows, [p for p, _, _ in pairs], desc)

    def verified(self, rows: List[dict], problems: Sequence[Problem], desc: str) -> List[dict]:
        """`rows` with each one's verdict (code runs in the sandbox's worker pool)."""
        verdicts = self.verifier.verify([(p, r["completion"]) for p, r in zip(problems, rows)], desc=desc)
        return [{**r, **v} for r, v in zip(rows, verdicts)]

    def sample_round_model(self, i: int, problems: Sequence[Problem], sampling: Sampling, desc: str) -> List[dict]:
        """Sample M_i (the base model's revision applies to round 0 only)."""
        return self.sample_and_verify(self.model_after(i), lambda: self.model_identity(i),
                                      self.cfg.model.revision if i == 0 else None, problems, sampling, desc)

    @functools.cached_property
    def human_rows(self) -> List[dict]:
        """The train questions' own solutions as samples, verified like any other (code problems
        without a Python solution have none). The same every round: verified once per cell."""
        keep = self.cfg.source.keep_annotations
        with_solution = [p for p in self.data.train if p.solution]
        rows = [{**sample_row(p, 0, reference_text(p, keep), 0), "origin": "human"} for p in with_solution]
        return self.verified(rows, with_solution, desc="human solutions")

    # --- stages -----------------------------------------------------------------------------
    def think(self, i: int) -> None:
        stage = Stage(self.run_dir, i, "think")
        if self._skip(stage):
            return
        kind, desc = self.cfg.source.kind, f"round {i} think"
        sampling = Sampling.from_cfg(self.cfg.think, self.answer_format)
        if kind == "human":
            rows = self.human_rows
        elif kind == "distill":
            src = self.cfg.source
            rows = self.sample_and_verify(self.teacher, lambda: self.teacher_identity, src.teacher_revision,
                                          self.data.train, sampling, desc + " (teacher)")
        else:  # self and mixed: M_{i-1} thinks
            rows = self.sample_round_model(i - 1, self.data.train, sampling, desc)
        with stage.writing() as out:
            write_jsonl(out / "samples.jsonl", rows)

    def prune(self, i: int) -> None:
        stage = Stage(self.run_dir, i, "prune")
        if self._skip(stage):
            return
        samples = read_jsonl(Stage(self.run_dir, i, "think").dir / "samples.jsonl")
        size, seed = self.cfg.data.size, self.cfg.data.seed + i
        if self.cfg.source.kind == "mixed":
            # Self samples for (size - human_size) questions, human solutions for others.
            human_size = self.cfg.source.human_size
            kept, stats = prune(samples, self.cfg.pruning.strategy, size - human_size, seed)
            taken = {s["qid"] for s in kept}
            human_pool = [r for r in self.human_rows if r["qid"] not in taken]
            human, human_stats = prune(human_pool, "gt", human_size, seed)
            kept = kept + human
            stats.update(human_size=human_stats["size"], self_size=stats["size"], size=len(kept),
                         requested_size=size)
        else:
            kept, stats = prune(samples, self.cfg.pruning.strategy, size, seed)
        origin = {"self": "self", "mixed": "self", "distill": "teacher", "human": "human"}[self.cfg.source.kind]
        records = [{"qid": s["qid"], "question": s["question"], "completion": s["completion"],
                    "origin": s.get("origin", origin), "round": i} for s in kept]
        if self.cfg.data.accumulate and i > 1:
            earlier = read_jsonl(Stage(self.run_dir, i - 1, "prune").dir / "train.jsonl")
            records = earlier + records
            stats["accumulated_size"] = len(records)
        log.info("round %d prune: %d/%d samples correct, %d/%d questions with a correct one, kept %d",
                 i, stats["correct_samples"], stats["samples"], stats["questions_with_correct"],
                 stats["questions"], len(records))
        with stage.writing() as out:
            write_jsonl(out / "train.jsonl", records)
            write_json(out / "stats.json", stats)

    def train(self, i: int) -> None:
        stage = Stage(self.run_dir, i, "train")
        if self._skip(stage):
            return
        records = read_jsonl(Stage(self.run_dir, i, "prune").dir / "train.jsonl")
        with stage.writing() as out:
            if not records:
                log.warning("round %d train: no training data survived pruning; M_%d = M_%d", i, i, i - 1)
                result = {"skipped": True, "examples": 0}
            else:
                result = sft(self.model_after(i - 1), to_conversations(records, self.prompt),
                             out / "model", self.cfg.train, lr=self.lr, dtype=self.cfg.model.dtype)
            write_json(out / "result.json", result)

    def eval(self, i: int) -> None:
        stage = Stage(self.run_dir, i, "eval")
        if self._skip(stage):
            return
        rows = self.sample_round_model(i, self.data.eval, Sampling.from_cfg(self.cfg.eval, self.answer_format),
                                       desc=f"round {i} eval")
        by_q: Dict[str, List[dict]] = {}
        for r in rows:
            by_q.setdefault(r["qid"], []).append(r)
        metrics = summarize([[r["correct"] for r in g] for g in by_q.values()], self.cfg.eval.k)
        metrics["lenient_pass@1"] = sum(r["lenient_correct"] for r in rows) / len(rows)
        metrics["format_rate"] = sum(r["pred"] is not None for r in rows) / len(rows)
        metrics["mean_tokens"] = sum(r["n_tokens"] for r in rows) / len(rows)
        metrics.update(diversity(list(by_q.values())))
        if self.answer_format == "code":  # why programs failed: share of samples per verdict
            for verdict, count in sorted(Counter(r["verdict"] for r in rows).items()):
                metrics[f"verdict/{verdict}"] = count / len(rows)
        with stage.writing() as out:
            write_jsonl(out / "samples.jsonl", rows)
            write_json(out / "metrics.json", metrics)

    def _skip(self, stage: Stage) -> bool:
        if stage.done:
            log.info("%s: finished earlier, skipping", stage)
            return True
        log.info("%s: starting", stage)
        return False

    # --- reporting --------------------------------------------------------------------------
    def round_row(self, i: int) -> Dict:
        metrics = read_json(Stage(self.run_dir, i, "eval").dir / "metrics.json")
        row = {"round": i, **metrics}
        if i > 0:
            stats = read_json(Stage(self.run_dir, i, "prune").dir / "stats.json")
            train = read_json(Stage(self.run_dir, i, "train").dir / "result.json")
            row.update({"data_size": stats.get("accumulated_size", stats["size"]),
                        "think_correct": stats["correct_samples"], "think_samples": stats["samples"],
                        "train_loss": train.get("train_loss")})
        return row


def check_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """A run directory belongs to one config: refuse to mix stages from another into it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):  # an atomic write cut short by a kill: never a finished file
        stale.unlink(missing_ok=True)
    pinned = OmegaConf.to_container(cfg, resolve=True)
    for key in RERUN_FREE_KEYS:
        *parents, leaf = key.split(".")
        node = pinned
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    path = run_dir / "run_config.yaml"
    if not path.exists():
        write_text_atomic(path, OmegaConf.to_yaml(pinned))
        return
    before = OmegaConf.to_container(OmegaConf.load(path))
    if before != pinned:
        diff = sorted(_diff_keys(before, pinned))
        raise ConfigError(
            f"run directory {run_dir} holds a run with a different config (differs in: {', '.join(diff)}). "
            f"Use another name=... or delete the directory to start over."
        )


def _diff_keys(a, b, prefix: str = "") -> List[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def format_summary(rows: Sequence[Dict], ks: Sequence[int]) -> str:
    k = max(ks)
    head = ["round", "Pass@1", f"Pass@{k}", f"Correct@{k}", "lenient@1", "format", "answers/q", "diversity",
            "kept data", "train loss"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        loss = r.get("train_loss")
        lines.append(" | ".join([
            str(r["round"]), f"{r['pass@1']:.3f}", f"{r[f'pass@{k}']:.3f}", f"{r[f'correct@{k}']:.3f}",
            f"{r['lenient_pass@1']:.3f}", f"{r['format_rate']:.2f}",
            f"{r['distinct_answers']:.2f}", f"{r['text_diversity']:.2f}",
            str(r.get("data_size", "-")), "-" if loss is None else f"{loss:.3f}",
        ]))
    return "\n".join(lines)


def run(cfg: DictConfig, run_dir: Path) -> List[Dict]:
    """Run (or resume) one cell; returns one metrics row per round."""
    run_dir = Path(run_dir)
    validate(cfg)
    check_backend(cfg.think.backend)
    data = load_task(cfg.task)
    base_model = models.check_loadable(cfg.model.id, cfg.model.revision)
    teacher = None
    if cfg.source.kind == "distill":
        teacher = models.check_loadable(cfg.source.teacher, cfg.source.teacher_revision)
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir):
        check_run_dir(cfg, run_dir)
        return run_cell(cfg, run_dir, data, base_model, teacher)


@contextlib.contextmanager
def exclusive(run_dir: Path):
    """One process per run directory: two writing the same stages would corrupt them. The lock
    goes with the process, so a killed or requeued job leaves none behind."""
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunDirBusy(f"run directory {run_dir} is in use by another tpt process; wait for it to end or "
                         f"stop it") from None
    try:
        yield
    finally:
        lock.release()


def run_cell(cfg: DictConfig, run_dir: Path, data: TaskData, base_model: str, teacher: str | None) -> List[Dict]:
    log.info("cell %s: model %s, task %s (%d train / %d eval questions, %d-shot), %d round(s)",
             run_dir, cfg.model.name, cfg.task.name, len(data.train), len(data.eval),
             len(data.few_shot), cfg.rounds)
    cell = Cell(cfg, run_dir, data, base_model, teacher)
    tracker = Tracker(cfg, run_dir)
    try:
        cell.eval(0)
        tracker.log_round(cell.round_row(0), Stage(run_dir, 0, "eval").dir / "samples.jsonl")
        for i in range(1, cfg.rounds + 1):
            cell.think(i)
            cell.prune(i)
            cell.train(i)
            cell.eval(i)
            tracker.log_round(cell.round_row(i), Stage(run_dir, i, "eval").dir / "samples.jsonl")
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    tracker.finish()
    summary = format_summary(tracker.rows, cfg.eval.k)
    write_text_atomic(run_dir / "summary.md", summary + "\n")
    print(f"\n{cfg.model.name} on {cfg.task.name}, pruning={cfg.pruning.strategy} ({run_dir})\n{summary}\n",
          flush=True)
    return tracker.rows
