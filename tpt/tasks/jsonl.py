"""Any question/answer data set as a math task: `task=jsonl task.path=<folder or file>` or
`task.hub_id=<dataset>`.

Files are read by `datasets` (jsonl/json, csv, parquet); the columns holding the question, the
answer and an optional worked solution are named in `task.fields`, and the answer is read and judged
by the task's answer rule (`task.answer`, tpt.verify.math). A folder holds `<train_split>.<ext>` and
`<test_split>.<ext>`; one file is split into train and test by `task.test_fraction`, seeded.
Every row is checked before any compute: a malformed file, a missing column or a bad value names the
file, the row and the field.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from tpt.config import ConfigError, MathTaskConfig
from tpt.tasks.base import DataError, Problem, TaskSpec, iter_jsonl, load_hub_split, make_problem


@dataclass
class FieldsConfig:
    """Which columns of a question/answer file hold what."""

    question: str = "question"
    answer: str = "answer"  # the gold answer, bare or at the end of a worked solution (read by task.answer's rule)
    solution: Optional[str] = None  # a worked solution (few-shot turns, source=human); null: the answer field's text
    id: Optional[str] = None  # a row id kept in samples.jsonl; null: <split>-<row>


@dataclass
class JsonlTaskConfig(MathTaskConfig):
    """Any question/answer file: task.path, a folder with train and test files (.jsonl, .json, .csv
    or .parquet) or one file, or task.hub_id."""

    name: str = "jsonl"
    fields: FieldsConfig = field(default_factory=FieldsConfig)
    train_split: str = "train"  # file stem or hub split of each
    test_split: str = "test"
    # task.path is one file: this share of its rows (seeded by task.eval_seed) is held out as the test split
    test_fraction: float = 0.2


# file suffix -> the `datasets` builder that reads it
FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def split_file(root: Path, split: str) -> Path:
    """The one file of a split in a folder (`train.jsonl`, `test.parquet`, ...)."""
    found = [root / f"{split}{ext}" for ext in FORMATS if (root / f"{split}{ext}").is_file()]
    if not found:
        raise DataError(f"{root}: no {split} file (one of {', '.join(split + ext for ext in FORMATS)})")
    if len(found) > 1:
        raise DataError(f"{root}: several {split} files ({', '.join(p.name for p in found)}); keep one")
    return found[0]


def read_file(path: Path):
    """A data file as a `datasets.Dataset`; a file it cannot read is a DataError naming it (and, for
    JSON lines, the first line that is not a JSON object)."""
    import datasets  # imported here: slow, and only file tasks need it

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: no rows")
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as e:  # pyarrow's errors do not say where: find the line when we can
        if path.suffix.lower() == ".jsonl":
            for _ in iter_jsonl(path):  # raises with file:line on the first malformed line
                pass
        if path.suffix.lower() == ".csv":
            check_csv_rows(path)  # raises with file:line on the first row that does not fit the header
        raise DataError(f"{path}: cannot be read as {path.suffix[1:]} ({type(e).__name__}: {e})") from None


def check_csv_rows(path: Path) -> None:
    """Raise a DataError naming the first line of a CSV file whose field count is not its header's."""
    import csv

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        for record in reader:
            if record and len(record) != len(header):
                raise DataError(
                    f"{path}:{reader.line_num}: {len(record)} fields where the header has {len(header)} "
                    f"({', '.join(header)}); quote a field that holds a comma"
                )


def rows(ds, origin: str, fields) -> Iterator[Tuple[str, dict]]:
    """(where, row) of a dataset whose columns must include the named fields."""
    needed = {"question": fields.question, "answer": fields.answer, "solution": fields.solution, "id": fields.id}
    for role, column in needed.items():
        if column is not None and column not in ds.column_names:
            raise DataError(f"{origin}: no field {column!r} (task.fields.{role}); its fields are {ds.column_names}")
    if len(ds) == 0:
        raise DataError(f"{origin}: no rows")
    return ((f"{origin} row {i + 1}", row) for i, row in enumerate(ds))


def to_problems(raw: Iterable[Tuple[str, dict]], split: str, rule: str, fields) -> List[Problem]:
    names = (fields.question, fields.answer, fields.solution or fields.answer)
    problems, wheres = [], []
    for i, (where, row) in enumerate(raw):
        wheres.append(where)
        pid = f"{split}-{row[fields.id]}" if fields.id else f"{split}-{i}"
        problems.append(
            make_problem(
                pid,
                row.get(fields.question),
                row.get(fields.answer),
                where,
                rule,
                row.get(fields.solution) if fields.solution else None,
                names,
            )
        )
    first: Dict[str, str] = {}
    for problem, where in zip(problems, wheres):
        if problem.id in first:
            raise DataError(
                f"{where}: id {problem.id.removeprefix(split + '-')!r} (field {fields.id!r}, task.fields.id) is also "
                f"the id of {first[problem.id]}; each row needs its own"
            )
        first[problem.id] = where
    return problems


def held_out(n: int, fraction: float, seed: int) -> set:
    """Which rows of a single file are the test split: a seeded share of them."""
    k = max(1, round(n * fraction))
    return set(random.Random(seed).sample(range(n), k)) if n > 1 else set()


def load_split(cfg, split_name: str, fields, origin_split: Optional[str] = None) -> List[Problem]:
    """One split's problems from task.path (a folder) or task.hub_id."""
    if cfg.path:
        path = split_file(Path(cfg.path).expanduser(), split_name)
        return to_problems(rows(read_file(path), str(path), fields), origin_split or split_name, cfg.answer, fields)
    ds = load_hub_split(
        cfg.hub_id, cfg.hub_config, split_name, "Set task.path to a local folder or file to run offline."
    )
    origin = f"{cfg.hub_id}[{split_name}]"
    return to_problems(rows(ds, origin, fields), origin_split or split_name, cfg.answer, fields)


def load(cfg) -> Tuple[List[Problem], List[Problem]]:
    if not cfg.path and not cfg.hub_id:
        raise DataError("task=jsonl needs task.path=<folder or file> or task.hub_id=<dataset>")
    path = Path(cfg.path).expanduser() if cfg.path else None
    if path is not None and not path.exists():
        raise DataError(f"task.path={cfg.path!r}: no such file or folder")
    if path is not None and path.is_file():  # one file: hold out a seeded share as the test split
        every = to_problems(rows(read_file(path), str(path), cfg.fields), "row", cfg.answer, cfg.fields)
        test_rows = held_out(len(every), cfg.test_fraction, cfg.eval_seed)
        train = [p for i, p in enumerate(every) if i not in test_rows]
        test = [p for i, p in enumerate(every) if i in test_rows]
        if not train or not test:
            raise DataError(
                f"{path}: {len(every)} rows cannot be split into train and test "
                f"(task.test_fraction={cfg.test_fraction})"
            )
        return train, test
    return load_split(cfg, cfg.train_split, cfg.fields, "train"), load_split(cfg, cfg.test_split, cfg.fields, "test")


def check(task) -> None:
    if not 0 < task.test_fraction < 1:
        raise ConfigError(f"invalid config: task.test_fraction must lie in (0, 1) (got {task.test_fraction})")


TASK = TaskSpec("jsonl", load, "math", JsonlTaskConfig, check, prompt_tokens=200)
