"""The paper's Tables 2-9 (arXiv 2504.18116) as data, transcribed from shared/paper/tables.md.

Numbers are as printed: Pass@1 and Pass@k in percent, Correct@k a count of questions. Each row names
the run that reproduces it, `ours = (paper_row id, round)`: the cell whose run_config.yaml has the
top-level key `paper_row: <id>`, read at that round (0 = the untrained model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

PASS_K = {"gsm8k": 20, "leetcode": 20, "codecontests": 50}  # the k of each task's Pass@k in the paper
QUESTIONS = {"gsm8k": 500, "codecontests": 140}  # the paper's test questions: what Correct@k counts out of
GPT4O_GSM8K_PASS1 = 82.0  # Figure 3's reference line: GPT-4o's Pass@1 on GSM8K, in percent


@dataclass(frozen=True)
class Row:
    model: str  # as the paper writes it (Table 5: the task)
    stage: str  # approach, size and data source as the paper writes them
    pass1: float
    passk: float
    ours: Tuple[str, int]  # (paper_row id, round)
    correct: Optional[int] = None  # Correct@k, where the table has it
    task: Optional[str] = None  # only where it is not the table's (Table 5 holds two tasks)
    paper_from: Optional[Tuple[str, str]] = None  # (table id, row label): the numbers are that row's

    @property
    def label(self) -> str:
        return f"{self.model} {self.stage}"


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    task: Optional[str]  # None: each row names its own
    rows: Tuple[Row, ...]

    def task_of(self, row: Row) -> str:
        return row.task or self.task

    def k_of(self, row: Row) -> int:
        return PASS_K[self.task_of(row)]

    @property
    def k(self) -> Optional[int]:
        """The k of the table's Pass@k, None where its rows differ (Table 5)."""
        ks = {self.k_of(r) for r in self.rows}
        return ks.pop() if len(ks) == 1 else None

    def row(self, label: str) -> Row:
        return next(r for r in self.rows if r.label == label)


G2, G9 = "Gemma-2-2B", "Gemma-2-9B"
L1, L70 = "Llama-3.2-1B-Instruct", "Llama-3.3-70B-Instruct"

TABLE2 = Table(
    "table2",
    "GSM8K, scaling the amount of data and its source (one round of SFT on the base model)",
    "gsm8k",
    (
        Row(G2, "baseline", 41.9, 76.0, ("t2_2b_self_1k", 0)),
        Row(G2, "self-gen 1k (2B)", 50.6, 81.8, ("t2_2b_self_1k", 1)),
        Row(G2, "self-gen 2k (2B)", 52.5, 83.0, ("t2_2b_self_2k", 1)),
        Row(G2, "self-gen 4k (2B)", 54.8, 82.6, ("t2_2b_self_4k", 1)),
        Row(G2, "self-gen 6k (2B)", 51.6, 81.0, ("t2_2b_self_6k", 1)),
        Row(G2, "human 2k (GSM8K train)", 45.5, 83.0, ("t2_2b_human_2k", 1)),
        Row(G2, "human 4k (GSM8K train)", 44.3, 83.4, ("t2_2b_human_4k", 1)),
        Row(G2, "human 6k (GSM8K train)", 44.0, 85.6, ("t2_2b_human_6k", 1)),
        Row(G2, "distill 1k (9B)", 51.2, 83.1, ("t2_2b_distill_1k", 1)),
        Row(G2, "distill 2k (9B)", 54.0, 83.8, ("t2_2b_distill_2k", 1)),
        Row(G2, "distill 4k (9B)", 53.1, 83.0, ("t2_2b_distill_4k", 1)),
        Row(G2, "distill 6k (9B)", 51.2, 82.6, ("t2_2b_distill_6k", 1)),
        Row(G9, "baseline", 66.4, 88.4, ("t2_9b_self_1k", 0)),
        Row(G9, "self-gen 1k (9B)", 80.5, 89.0, ("t2_9b_self_1k", 1)),
        Row(G9, "self-gen 2k (9B)", 81.1, 90.0, ("t2_9b_self_2k", 1)),
    ),
)

TABLE3 = Table(
    "table3",
    "GSM8K, recursive rounds (TPT, self-generated, pruned, 2k per round)",
    "gsm8k",
    (
        Row(G2, "baseline", 41.9, 76.0, ("t3_2b", 0), 380),
        Row(G2, "init (M1)", 52.5, 83.0, ("t3_2b", 1), 415),
        Row(G2, "rec 1 (M2)", 56.0, 83.0, ("t3_2b", 2), 415),
        Row(G2, "rec 2 (M3)", 56.9, 83.2, ("t3_2b", 3), 416),
        Row(G2, "rec 3 (M4)", 57.6, 83.2, ("t3_2b", 4), 416),
        Row(G9, "baseline", 66.4, 88.4, ("t3_9b", 0), 442),
        Row(G9, "init (M1)", 81.1, 90.0, ("t3_9b", 1), 450),
        Row(G9, "rec 1 (M2)", 82.3, 89.4, ("t3_9b", 2), 447),
        Row(G9, "rec 2 (M3)", 82.4, 90.2, ("t3_9b", 3), 451),
    ),
)

TABLE4 = Table(
    "table4",
    "CodeContests, recursive rounds (1k per round)",
    "codecontests",
    (
        Row(G2, "baseline", 0.90, 5.70, ("t4_2b", 0), 8),
        Row(G2, "init (M1)", 0.84, 7.14, ("t4_2b", 1), 10),
        Row(G2, "rec (M2)", 1.00, 9.20, ("t4_2b", 2), 13),
        Row(G2, "rec (M3)", 1.10, 9.20, ("t4_2b", 3), 13),
        Row(G2, "rec (M4)", 1.14, 7.85, ("t4_2b", 4), 11),
        Row(G9, "baseline", 5.10, 15.00, ("t4_9b", 0), 21),
        Row(G9, "init (M1)", 7.30, 18.50, ("t4_9b", 1), 26),
        Row(G9, "rec (M2)", 7.60, 17.80, ("t4_9b", 2), 25),
        Row(G9, "rec (M3)", 7.90, 18.50, ("t4_9b", 3), 26),
    ),
)


def _same_numbers_as(table: Table, label: str, model: str, stage: str, ours: Tuple[str, int], task: str) -> Row:
    """A row whose paper numbers are another table's row (Table 5's note names them), without copying them."""
    source = table.row(label)
    return replace(source, model=model, stage=stage, ours=ours, correct=None, task=task, paper_from=(table.id, label))


GSM, CC = "GSM8K", "CodeContests"
TABLE5 = Table(
    "table5",
    "pruning: none vs ground truth vs soft-positive (Gemma-2-2B, one round)",
    None,
    (
        Row(GSM, "baseline", 41.9, 76.0, ("t5_gsm8k_none_2k", 0), task="gsm8k"),
        Row(GSM, "2k no-prune", 45.13, 71.6, ("t5_gsm8k_none_2k", 1), task="gsm8k"),
        Row(GSM, "6k no-prune", 44.57, 71.0, ("t5_gsm8k_none_6k", 1), task="gsm8k"),
        Row(CC, "baseline", 0.90, 5.70, ("t5_code_none_1k", 0), task="codecontests"),
        Row(CC, "1k no-prune", 0.85, 5.70, ("t5_code_none_1k", 1), task="codecontests"),
        Row(CC, "1k no-prune (9B data)", 0.94, 6.40, ("t5_code_none_1k_9b", 1), task="codecontests"),
        Row(CC, "5k no-prune", 0.90, 6.42, ("t5_code_none_5k", 1), task="codecontests"),
        Row(CC, "5k no-prune (9B data)", 0.67, 9.29, ("t5_code_none_5k_9b", 1), task="codecontests"),
        Row(CC, "1k soft-positive", 0.70, 8.57, ("t5_code_soft_1k", 1), task="codecontests"),
        # the ground-truth-pruned counterparts, which the table's note points to in Tables 2 and 4
        _same_numbers_as(TABLE2, f"{G2} self-gen 2k (2B)", GSM, "2k ground-truth", ("t5_gsm8k_gt_2k", 1), "gsm8k"),
        _same_numbers_as(TABLE2, f"{G2} self-gen 6k (2B)", GSM, "6k ground-truth", ("t5_gsm8k_gt_6k", 1), "gsm8k"),
        _same_numbers_as(TABLE4, f"{G2} init (M1)", CC, "1k ground-truth", ("t5_code_gt_1k", 1), "codecontests"),
    ),
)

TABLE6 = Table(
    "table6",
    "Llama models, one round of TPT on GSM8K",
    "gsm8k",
    (
        Row(L1, "baseline", 18.2, 65.2, ("t6_llama1b", 0)),
        Row(L1, "2k fine-tune", 20.8, 68.4, ("t6_llama1b", 1)),
        Row(L70, "baseline", 78.6, 92.2, ("t6_llama70b", 0)),
        Row(L70, "6k fine-tune", 91.5, 95.8, ("t6_llama70b", 1)),
    ),
)

TABLE7 = Table(
    "table7",
    "CodeContests, scaling the amount of data (appendix B)",
    "codecontests",
    (
        Row(G2, "baseline", 0.90, 5.70, ("t7_2b_self_1k", 0)),
        Row(G2, "1k 2B-synth", 0.84, 7.14, ("t7_2b_self_1k", 1)),
        Row(G2, "2k 2B-synth", 0.71, 7.14, ("t7_2b_self_2k", 1)),
        Row(G2, "4k 2B-synth", 0.56, 7.85, ("t7_2b_self_4k", 1)),
        Row(G2, "6k 2B-synth", 0.66, 8.57, ("t7_2b_self_6k", 1)),
        Row(G2, "1k human", 0.60, 6.43, ("t7_2b_human_1k", 1)),
        Row(G2, "2k human", 0.41, 7.10, ("t7_2b_human_2k", 1)),
        Row(G2, "4k human", 0.24, 5.71, ("t7_2b_human_4k", 1)),
        Row(G2, "6k human", 0.29, 5.00, ("t7_2b_human_6k", 1)),
        Row(G9, "baseline", 5.20, 15.00, ("t7_9b_self_1k", 0)),
        Row(G9, "1k 9B-synth", 7.30, 17.80, ("t7_9b_self_1k", 1)),
        Row(G9, "2k 9B-synth", 7.10, 18.50, ("t7_9b_self_2k", 1)),
        Row(G9, "4k 9B-synth", 6.70, 17.10, ("t7_9b_self_4k", 1)),
    ),
)

TABLE8 = Table(
    "table8",
    "LeetCode, 1k synthetic examples (appendix B)",
    "leetcode",
    (
        Row(G2, "baseline", 13.66, 36.60, ("t8_2b_self_1k", 0)),
        Row(G2, "1k 2B-synth", 14.65, 33.66, ("t8_2b_self_1k", 1)),
        Row(G2, "1k 9B-synth", 12.82, 33.66, ("t8_2b_distill_1k", 1)),
        Row(G9, "baseline", 13.66, 36.60, ("t8_9b_self_1k", 0)),  # the paper repeats the 2B figures here
        Row(G9, "1k 9B-synth", 14.65, 33.66, ("t8_9b_self_1k", 1)),
    ),
)

TABLE9 = Table(
    "table9",
    "mixing human and self-generated data, CodeContests, Gemma-2-2B (appendix B.3)",
    "codecontests",
    (
        Row(G2, "1k: 500 human + 500 self", 1.0, 7.14, ("t9_mixed_1k", 1)),
        Row(G2, "2k: 1k human + 1k self", 0.60, 7.85, ("t9_mixed_2k", 1)),
        Row(G2, "4k: 2k human + 2k self", 0.24, 5.71, ("t9_mixed_4k", 1)),
        Row(
            G2, "recursive mixed: M1 (trained on 1k mixed) fine-tuned again on 1k mixed", 0.87, 7.14, ("t9_mixed_1k", 2)
        ),
        Row(G2, "1k self (2B) on the base model", 0.92, 4.28, ("t9_self_1k", 1)),
    ),
)

TABLES: Dict[str, Table] = {t.id: t for t in (TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE8, TABLE9)}


# ---- where the paper disagrees with itself ----------------------------------------------------------

# Rows of different tables that report the same experiment (the same model trained the same way), as
# the paper's text describes them; where their printed numbers differ, `inconsistencies` says so.
SAME_EXPERIMENT = (
    (("table4", f"{G2} baseline"), ("table7", f"{G2} baseline")),
    (("table4", f"{G9} baseline"), ("table7", f"{G9} baseline")),
    (("table4", f"{G2} init (M1)"), ("table7", f"{G2} 1k 2B-synth")),
    (("table4", f"{G9} init (M1)"), ("table7", f"{G9} 1k 9B-synth")),
    (("table4", f"{G2} init (M1)"), ("table9", f"{G2} 1k self (2B) on the base model")),
)


def _numbers(table: Table, row: Row) -> str:
    return f"Pass@1 {row.pass1:.2f}, Pass@{table.k_of(row)} {row.passk:.2f}"


def inconsistencies(table_id: str) -> List[str]:
    """What a reader of this table should know the paper prints inconsistently: the same experiment
    with other numbers in another table, rows of different models with identical numbers, and code
    Pass@k values that are Correct@k / questions truncated rather than rounded."""
    table, notes = TABLES[table_id], []
    for (ta, la), (tb, lb) in SAME_EXPERIMENT:
        if table_id not in (ta, tb):
            continue
        a, b = TABLES[ta].row(la), TABLES[tb].row(lb)
        if (a.pass1, a.passk) != (b.pass1, b.passk):
            notes.append(
                f"The paper prints one experiment twice with different numbers: {la} in {_title(ta)} "
                f"({_numbers(TABLES[ta], a)}) and {lb} in {_title(tb)} ({_numbers(TABLES[tb], b)})."
            )
    for i, a in enumerate(table.rows):
        for b in table.rows[i + 1 :]:
            if a.model != b.model and (a.pass1, a.passk) == (b.pass1, b.passk) and a.paper_from is None:
                notes.append(
                    f"{b.label} repeats {a.label}'s numbers exactly ({_numbers(table, a)}): as printed, "
                    "most likely a copy, so a difference to that row says little."
                )
    truncated = [r for r in table.rows if r.paper_from is None and _truncated_share(table, r)]
    if truncated:
        examples = ", ".join(f"{r.passk:.2f} ({_truncated_share(table, r)})" for r in truncated[:3])
        notes.append(
            f"{len(truncated)} Pass@k values here are Correct@k / {QUESTIONS[table.task_of(truncated[0])]} "
            f"truncated, not rounded: {examples}; ours − paper may be off by up to 0.1 from that alone."
        )
    return notes


def _title(table_id: str) -> str:
    return f"Table {table_id.removeprefix('table')}"


def _truncated_share(table: Table, row: Row) -> Optional[str]:
    """`13/140 = 9.29` when the printed Pass@k is that share truncated (to 1 or 2 decimals) and not
    rounded; None otherwise. Only for tasks whose question count the paper gives."""
    questions = QUESTIONS.get(table.task_of(row))
    if questions is None or table.task_of(row) == "gsm8k":  # GSM8K's Pass@20 are printed to one decimal, rounded
        return None
    count = round(row.passk * questions / 100)
    exact = 100 * count / questions
    if abs(round(exact, 2) - row.passk) < 1e-9:
        return None
    for places in (1, 2):
        if abs(math.floor(exact * 10**places) / 10**places - row.passk) < 1e-9:
            return f"{count}/{questions} = {exact:.2f}"
    return None
