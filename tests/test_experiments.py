"""Every paper table is one experiment (conf/experiment/tableN.yaml): each of its cells composes,
through Hydra's public API, into a valid config at the paper's setting, and as a CPU miniature."""

from __future__ import annotations

import pytest

from tpt import miniature
from tpt.compose import compose
from tpt.experiments import TABLES
from tpt.experiments import cells as experiment_cells
from tpt.sources import scaled
from tpt.validate import validate

# What the cells need from the user besides the experiment (Table 8: the unnamed LeetCode set).
EXTRA = {"table8": ["task.path=/data/leetcode"]}


def cells(table, *extra):
    return experiment_cells(table, *EXTRA.get(table, []), *extra)


def row_of(overrides):
    return next(o for o in overrides if o.startswith("row="))


def test_there_is_one_experiment_per_paper_table():
    assert TABLES == [f"table{n}" for n in range(2, 10)]


@pytest.mark.parametrize("table", TABLES)
def test_every_cell_of_a_table_composes_and_validates(table):
    rows = cells(table)
    assert rows
    seen = set()
    for overrides in rows:
        cfg = compose(overrides)
        validate(cfg)
        assert cfg.paper_row == row_of(overrides).split("=")[1] and cfg.paper_row.startswith(f"t{table[5:]}_")
        assert cfg.name == table
        seen.add(cfg.paper_row)
    assert len(seen) == len(rows)  # no row twice


@pytest.mark.parametrize("table", TABLES)
def test_every_cell_has_a_valid_cpu_miniature(table):
    for overrides in cells(table, "miniature=true"):
        paper_size = compose([o for o in overrides if o != "miniature=true"]).data.size
        cfg = compose(overrides)
        assert cfg.name == f"{table}_cpu"
        validate(cfg)
        assert cfg.model.id == "embedded:smollm2-135m-instruct"
        assert cfg.task.name in ("arith", "minicode")
        assert cfg.data.size == paper_size and scaled(cfg.data.size, cfg.data.scale) < paper_size
        assert cfg.source.kind != "distill" or cfg.source.teacher == cfg.model.id


def test_rows_carry_the_paper_setting():
    t3 = {row_of(c): compose(c) for c in cells("table3")}
    assert {r: (c.model.name, c.task.name, c.data.size, c.rounds) for r, c in t3.items()} == {
        "row=t3_2b": ("gemma2_2b_it", "gsm8k", 2000, 4),
        "row=t3_9b": ("gemma2_9b_it", "gsm8k", 2000, 3),
    }
    t5 = {row_of(c): compose(c) for c in cells("table5")}
    soft, distilled = t5["row=t5_code_soft_1k"], t5["row=t5_code_none_5k_9b"]
    assert (soft.pruning.strategy, soft.task.name, soft.data.size) == ("soft", "codecontests", 1000)
    assert (distilled.source.kind, distilled.source.teacher, distilled.pruning.strategy, distilled.data.size) == (
        "distill",
        "google/gemma-2-9b-it",
        "none",
        5000,
    )
    mixed = compose(cells("table9")[1])
    assert (mixed.source.kind, mixed.source.human_size, mixed.data.size) == ("mixed", 1000, 2000)


def test_table8_says_it_needs_the_leetcode_data():
    from tpt.tasks import DataError, load_task

    cfg = compose(["+experiment=table8", "row=t8_2b_self_1k"])
    with pytest.raises(DataError, match="task leetcode needs task.path"):
        load_task(cfg.task)


def test_a_miniature_keeps_what_the_command_line_set():
    overrides = ["+experiment=table3", "row=t3_2b", "miniature=true", "task.eval_questions=256", "eval.k=[1,2]"]
    cfg = compose(overrides)
    assert (cfg.task.name, cfg.task.eval_questions, list(cfg.eval.k), cfg.eval.n) == ("arith", 256, [1, 2], 4)
    assert (cfg.miniature_of, cfg.task.train_questions, cfg.data.scale) == ("gsm8k", 96, 0.012)


def test_a_miniature_asks_for_its_own_resources_and_is_composed_once():
    from tpt.cluster import submitit_parameters
    from tpt.compose import compose_plain

    overrides = ["+experiment=table6", "row=t6_llama70b", "cluster=slurm", "miniature=true", "task.eval_questions=8"]
    paper = compose_plain(overrides)
    assert (paper.cluster.gpus, paper.cluster.nodes) == (8, 2)  # the paper's 70B row
    cfg = compose(overrides)  # as the SLURM launcher composes it at submit time
    params = submitit_parameters(cfg.cluster, None)
    assert "gpus_per_node" not in params and params["nodes"] == 1 and cfg.task.eval_questions == 8
    assert miniature.compose_miniature(cfg, overrides, compose_plain) is None  # the job runs it as it is


def test_a_miniature_refuses_a_key_no_task_has():
    from tpt.config import ConfigError

    with pytest.raises(ConfigError, match="task.nonsense is not a config key"):
        validate(compose(["miniature=true", "row=t3_2b", "+task.nonsense=1"]))
