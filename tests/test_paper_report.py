"""`tpt.report --paper`: the paper's tables (tpt/paper.py) beside ours, on made-up sweep trees."""

import csv
import json
import os
import re
from pathlib import Path

import pytest

from tpt.paper import GPT4O_GSM8K_PASS1, TABLES
from tpt.report import main

TABLES_MD = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tables.md"
PNG = b"\x89PNG\r\n\x1a\n"


def make_cell(root, name, paper_row, metrics_by_round, k=20, questions=500):
    """A cell as tpt.report finds it: run_config.yaml with `paper_row`, metrics.jsonl in fractions."""
    d = root / name
    d.mkdir(parents=True)
    (d / "run_config.yaml").write_text(f"paper_row: {paper_row}\nmodel: {{name: m}}\ntask: {{name: gsm8k}}\n")
    rows = [
        {
            "round": r,
            "pass@1": p1,
            "pass@1_se": 0.01,
            f"pass@{k}": pk,
            f"pass@{k}_se": 0.02,
            f"correct@{k}": pk * questions,
            "questions": questions,
        }
        for r, (p1, pk) in metrics_by_round.items()
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_csv(path):
    return {(r["paper_row"], r["round"]): r for r in csv.DictReader(path.open())}


def test_table3_beside_ours_gives_exact_differences_and_marks_missing_rows(tmp_path, capsys):
    make_cell(tmp_path, "gemma2b", "t3_2b", {0: (0.45, 0.80), 1: (0.50, 0.83)})  # rounds 2-4 not run yet
    make_cell(tmp_path, "other", "t2_2b_self_2k", {0: (0.1, 0.2), 1: (0.1, 0.2)})  # another table's cell: ignored

    main([str(tmp_path), "--paper", "table3"])

    rows = read_csv(tmp_path / "paper_table3.csv")
    assert len(rows) == len(TABLES["table3"].rows)
    base, m1 = rows[("t3_2b", "0")], rows[("t3_2b", "1")]
    # Table 3: 2B baseline 41.9 / 76.0 / 380; init (M1) 52.5 / 83.0 / 415
    assert (float(base["pass@1_pct"]), float(base["d_pass@1_pct"])) == (45.0, 3.1)
    assert (float(base["pass@k_pct"]), float(base["d_pass@k_pct"])) == (80.0, 4.0)
    assert (float(m1["d_pass@1_pct"]), float(m1["d_pass@k_pct"])) == (-2.5, 0.0)
    assert float(base["pass@1_se_pct"]) == 1.0 and float(base["correct@k"]) == 400.0
    assert base["paper_correct@k"] == "380" and base["our_k"] == base["paper_k"] == "20"
    assert base["cell"] == "gemma2b" and base["status"] == "done"
    assert [rows[("t3_2b", str(r))]["status"] for r in (2, 3, 4)] == ["missing"] * 3
    assert all(rows[("t3_9b", str(r))]["status"] == "missing" for r in range(4))
    assert rows[("t3_9b", "0")]["paper_pass@1_pct"] == "66.4" and rows[("t3_9b", "0")]["d_pass@1_pct"] == ""

    markdown = (tmp_path / "paper_table3.md").read_text()
    assert (
        "| Gemma-2-2B baseline | t3_2b@0 | 45.00 ± 1.00 | 41.90 | +3.10 | 80.00 ± 2.00 | 76.00 | +4.00 "
        "| 400/500 | 380/500 |" in markdown
    )
    assert (
        "| Gemma-2-9B rec 2 (M3) | t3_9b@3 | missing | 82.40 | - | missing | 90.20 | - | missing | 451/500 |"
        in markdown
    )
    out = capsys.readouterr().out
    assert markdown.strip() in out and "9 paper row(s), 7 missing" in out
    assert (tmp_path / "paper_table3.png").read_bytes()[:8] == PNG


def test_a_cell_with_another_k_shows_its_largest_k_and_no_difference(tmp_path, capsys):
    make_cell(tmp_path, "mini", "t6_llama1b", {0: (0.25, 0.5), 1: (0.3, 0.6)}, k=4, questions=8)

    main([str(tmp_path), "--paper", "table6"])

    row = read_csv(tmp_path / "paper_table6.csv")[("t6_llama1b", "1")]
    assert (row["our_k"], row["paper_k"], row["pass@k_pct"], row["d_pass@k_pct"]) == ("4", "20", "60.0", "")
    assert float(row["d_pass@1_pct"]) == pytest.approx(30.0 - 20.8)
    out = capsys.readouterr().out
    assert "| 60.00 ± 2.00 (k=4) | 68.40 | - |" in out and "largest k (4)" in out


def test_table5_ground_truth_rows_carry_the_numbers_of_the_rows_its_note_names(tmp_path):
    make_cell(tmp_path, "gt2k", "t5_gsm8k_gt_2k", {1: (0.5, 0.8)})
    make_cell(tmp_path, "code_gt", "t5_code_gt_1k", {1: (0.01, 0.07)}, k=50, questions=140)

    main([str(tmp_path), "--paper", "table5"])

    rows = read_csv(tmp_path / "paper_table5.csv")
    assert rows[("t5_gsm8k_gt_2k", "1")]["paper_from"] == "Table 2, Gemma-2-2B self-gen 2k (2B)"
    assert float(rows[("t5_gsm8k_gt_2k", "1")]["d_pass@1_pct"]) == -2.5  # 50.0 - 52.5
    assert float(rows[("t5_code_gt_1k", "1")]["d_pass@k_pct"]) == pytest.approx(7.0 - 7.14)
    assert rows[("t5_code_none_5k_9b", "1")]["status"] == "missing"
    assert "[paper: Table 4, Gemma-2-2B init (M1)]" in (tmp_path / "paper_table5.md").read_text()


@pytest.mark.parametrize("table_id", ["table3", "table5", "table6"])
def test_figures_render_headless_and_draw_every_number(tmp_path, table_id, monkeypatch):
    """The figure's bars are the paper's numbers and ours (here equal to the paper's), and the row
    left out is marked missing; the PNG is written."""
    from tpt import paper_report

    drawn = {"heights": [], "texts": []}
    original = paper_report._close

    def spy(fig, out):
        for ax in fig.axes:
            drawn["heights"] += [round(p.get_height(), 6) for p in ax.patches]
            drawn["heights"] += [round(float(y), 6) for line in ax.lines for y in set(line.get_ydata())]  # baselines
            drawn["texts"] += [t.get_text() for t in ax.texts]
        return original(fig, out)

    monkeypatch.setattr(paper_report, "_close", spy)
    table, by_cell = TABLES[table_id], {}
    for row in table.rows[:-1]:  # the last row stays missing; ours = the paper's numbers
        by_cell.setdefault(row.ours[0], (table.k_of(row), {}))[1][row.ours[1]] = (row.pass1 / 100, row.passk / 100)
    for row_id, (k, metrics) in by_cell.items():
        make_cell(tmp_path, row_id, row_id, metrics, k=k)
    if table_id == "table6":  # Figure 3 also draws the Gemma models when Table 3's cells are there
        make_cell(tmp_path, "gemma", "t3_2b", {0: (0.4, 0.7), 4: (0.55, 0.8)})

    main([str(tmp_path), "--paper", table_id])

    png = (tmp_path / f"paper_{table_id}.png").read_bytes()
    assert png[:8] == PNG and len(png) > 10_000
    shown = [row for row in table.rows[:-1] if row.pass1 is not None]
    if table_id == "table6":  # Figure 3: Pass@1 at each model's baseline and last row only
        shown = [r for r in shown if r.model != table.rows[-1].model]
    for row in shown:
        assert drawn["heights"].count(round(row.pass1, 6)) >= 2, (row, "ours and the paper's Pass@1, as bars or lines")
    assert "missing" in drawn["texts"]  # the row without a cell


def test_a_table_without_a_figure_writes_only_md_and_csv(tmp_path):
    make_cell(tmp_path, "a", "t9_mixed_1k", {1: (0.01, 0.07), 2: (0.009, 0.07)}, k=50, questions=140)
    main([str(tmp_path), "--paper", "table9"])
    assert sorted(p.name for p in tmp_path.glob("paper_*")) == ["paper_table9.csv", "paper_table9.md"]


# ---- the transcription: every number in tpt/paper.py is the one in tables.md ------------------


def tables_md() -> str:
    if not TABLES_MD.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the paper's tables are missing at {TABLES_MD}")
        pytest.skip(f"the paper's tables are not at {TABLES_MD} (shared/paper/tables.md beside the checkout)")
    return TABLES_MD.read_text()


def markdown_tables(text: str) -> dict:
    """`## Table N ...` section -> its markdown table as a list of {column: cell} rows."""
    tables, current = {}, None
    for line in text.splitlines():
        if m := re.match(r"## Table (\d+) ", line):
            current = f"table{m.group(1)}"
        elif current and line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current not in tables:
                tables[current] = {"head": cells, "rows": []}
            elif not set("".join(cells)) <= set("-"):
                tables[current]["rows"].append(dict(zip(tables[current]["head"], cells)))
    return tables


def _column(head, prefix, exclude=None):
    return next((c for c in head if c.startswith(prefix) and c != exclude), None)


@pytest.mark.parametrize("table_id", sorted(TABLES))
def test_paper_numbers_are_those_of_tables_md(table_id):
    printed = markdown_tables(tables_md())[table_id]
    head, table = printed["head"], TABLES[table_id]
    ours = [r for r in table.rows if r.paper_from is None]  # the others are checked below
    assert len(ours) == len(printed["rows"])
    pass_k, correct = _column(head, "Pass@", exclude="Pass@1"), _column(head, "Correct@")
    for row, md in zip(ours, printed["rows"]):
        assert (row.pass1, row.passk) == (float(md["Pass@1"]), float(md[pass_k])), row.label
        assert row.correct == (int(md[correct]) if correct else None), row.label
        name = md.get("model") or md.get("task")
        assert name is None or row.model == name, row.label
    if table.k:
        assert pass_k.startswith(f"Pass@{table.k}") and (correct is None or correct.startswith(f"Correct@{table.k}"))


def test_borrowed_rows_name_real_rows_and_the_gpt4o_line_is_the_papers():
    borrowed = [r for t in TABLES.values() for r in t.rows if r.paper_from]
    assert len(borrowed) == 3
    for row in borrowed:
        source = TABLES[row.paper_from[0]].row(row.paper_from[1])
        assert (row.pass1, row.passk) == (source.pass1, source.passk)
    assert float(re.search(r"GPT-4o at (\d+(?:\.\d+)?)% Pass@1 on GSM8K", tables_md()).group(1)) == GPT4O_GSM8K_PASS1
