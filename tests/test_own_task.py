"""A researcher's own task and model: question/answer files (`task=jsonl`), MATH (`task=math500`),
the answer rules and math-verify's judge, any chat model (`model=hf`), and their CPU miniatures."""

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose
from tpt.config import ConfigError
from tpt.models import ModelError
from tpt.preflight import prepare
from tpt.prompt import PromptBuilder, render, system_turn_accepted
from tpt.tasks import DataError, load_task
from tpt.tasks.base import Problem
from tpt.tasks.jsonl import JsonlTaskConfig
from tpt.tasks.math500 import Math500TaskConfig
from tpt.validate import validate
from tpt.verify import MathVerifier, answer_format
from tpt.verify.math import check_rule
from tpt.verify.symbolic import SymbolicJudge

MATH_ROWS = ROOT / "tests" / "data" / "math500"
ROWS = [
    {"q": f"What is {a} plus {b}?", "a": a + b, "sol": f"{a} + {b} = {a + b}."}
    for a in range(1, 6)
    for b in range(1, 5)
]


def jsonl_task(**settings):
    return OmegaConf.merge(
        OmegaConf.structured(JsonlTaskConfig),
        {"fields": {"question": "q", "answer": "a", "solution": "sol"}, "eval_questions": 4, **settings},
    )


def write(folder: Path, fmt: str, rows=ROWS, split=("train", "test")):
    import datasets

    folder.mkdir(parents=True, exist_ok=True)
    for name, part in zip(split, (rows[:14], rows[14:])):
        ds = datasets.Dataset.from_list(part)
        path = str(folder / f"{name}.{fmt}")
        if fmt == "jsonl":
            ds.to_json(path)
        elif fmt == "csv":
            ds.to_csv(path, index=False)
        else:
            ds.to_parquet(path)
    return folder


# --- answer rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer,completion,gold,correct,lenient",
    [
        ("lm_eval", "3 + 4 = 7\n#### 7", "7", True, True),
        ("boxed", "So the total is $\\boxed{1,200}$ apples, not 5.", "1200", True, False),  # lenient: the last number
        ("boxed", "The answer is 12.", "12", False, True),  # no box: a format failure, the lenient one finds it
        ("boxed", "\\boxed{\\frac{1}{2}}", "0.5", False, False),  # boxed is numeric only: math handles LaTeX
        ("last_number", "First 3, then 4, so 7.", "7", True, True),
        ("last_number", "It is 7. Check: 3 + 4.", "7", False, False),
    ],
)
def test_the_numeric_rules_judge_where_they_say(answer, completion, gold, correct, lenient):
    verdict = check_rule(completion, gold, answer)
    assert (verdict["correct"], verdict["lenient_correct"]) == (correct, lenient)


def test_a_boxed_answer_ends_generation_at_the_end_of_its_line():
    fmt = answer_format("math", "math")
    assert not fmt.done("so $\\boxed{\\frac{1}{")  # an open box is not an answer yet
    assert not fmt.done("so $\\boxed{3}$.")  # the line may go on
    assert fmt.done("so $\\boxed{3}$.\nMore")
    assert fmt.truncate("so $\\boxed{3}$.\nThen \\boxed{4}") == "so $\\boxed{3}$."
    assert answer_format("math", "last_number").done("7\n") is False  # the model decides when it ends


# Cases where math-verify (symbolic) and the normalised string match must agree, and where they are
# known to differ: equal values written differently are the second judge's reason to exist.
AGREE = [
    ("\\frac{3}{2}", "\\dfrac{3}{2}", True),
    ("3\\sqrt{2}", "3 \\sqrt{2}", True),
    ("[-2,4]", "[-2, 4]", True),
    ("120^\\circ", "120", True),
    ("5", "6", False),
    ("\\frac{1}{4}", "\\frac{1}{5}", False),
    ("[-2,4]", "[-2, 4)", False),
]
DIFFER = [("\\frac{3}{2}", "1.5"), ("3\\sqrt{2}", "\\sqrt{18}"), ("\\frac{1}{4}", "0.25"), ("x^2+2x+1", "(x+1)^2")]


def test_math_verify_and_the_string_match_agree_and_differ_where_they_must():
    verifier = MathVerifier("math")
    problems = [Problem(id=str(i), question="q", solution="", answer=gold) for i, (gold, _, _) in enumerate(AGREE)]
    verdicts = verifier.verify([(p, f"Thus $\\boxed{{{a}}}$.") for p, (_, a, _) in zip(problems, AGREE)])
    assert [(v["correct"], v["lenient_correct"]) for v in verdicts] == [(ok, ok) for _, _, ok in AGREE]
    verdicts = verifier.verify(
        [(Problem(id="d", question="q", solution="", answer=g), f"\\boxed{{{a}}}") for g, a in DIFFER]
    )
    assert [(v["correct"], v["lenient_correct"]) for v in verdicts] == [(True, False)] * len(DIFFER)
    assert verifier.verify([(problems[0], "3/2 without a box")])[0]["correct"] is False  # the rule reads the box only


# --- math-verify's timeout, in threads and worker processes ------------------------------------------

SLOW = "9^{9^{9^{9}}}"  # sympy would evaluate this power for ever: math-verify's own limit stops it


def test_math_verify_alone_cannot_time_out_in_a_thread():
    """Why tpt runs it in a worker: its signal-based timeout raises off the main thread."""
    from math_verify import parse

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="threaded environment"):
            pool.submit(parse, "$\\boxed{1}$").result()


def judge_in_worker(gold, answer):
    judge = SymbolicJudge(timeout_s=1)
    try:
        return judge(gold, answer), judge("\\frac{1}{2}", "0.5")
    finally:
        judge.close()


def test_the_judge_times_out_in_threads_and_in_worker_processes():
    judge = SymbolicJudge(timeout_s=1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow, fine = pool.submit(judge, "1", SLOW), pool.submit(judge, "\\frac{1}{2}", "0.5")
        assert slow.result(timeout=60) is False and fine.result(timeout=60) is True
    judge.close()
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        assert pool.submit(judge_in_worker, "1", SLOW).result(timeout=60) == (False, True)


def test_a_stuck_worker_is_killed_at_the_deadline_and_replaced():
    judge = SymbolicJudge(timeout_s=1)
    assert judge("2", "2") is True
    os.kill(judge.proc.pid, signal.SIGSTOP)  # stuck where no signal of its own reaches it
    start = time.monotonic()
    assert judge("2", "2") is None and judge.timeouts == 1
    assert time.monotonic() - start < 10
    assert judge("2", "2") is True  # a fresh worker
    judge.close()


# --- files as a task ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_folder_of_question_answer_files_is_a_task(fmt, tmp_path):
    data = load_task(jsonl_task(path=str(write(tmp_path / fmt, fmt)), answer="boxed"))
    assert len(data.train) == 14 and len(data.eval) == 4
    p = data.train[0]
    assert (p.question, p.answer) == ("What is 1 plus 1?", "2")
    assert p.solution == "1 + 1 = 2.\nThe answer is $\\boxed{2}$."  # the worked solution, stated as the rule reads it


def test_one_file_is_split_by_a_seeded_share(tmp_path):
    write(tmp_path, "jsonl", split=("all", "rest"))
    task = jsonl_task(path=str(tmp_path / "all.jsonl"), test_fraction=0.25, eval_questions=100)
    a, b = load_task(task), load_task(task)
    assert (len(a.train), len(a.eval)) == (10, 4) and [p.id for p in a.eval] == [p.id for p in b.eval]
    assert not {p.question for p in a.train} & {p.question for p in a.eval}


def test_a_hub_id_goes_through_load_dataset(tmp_path):
    """task.hub_id is read by datasets.load_dataset, the call the hub takes; a local folder stands in."""
    folder = write(tmp_path / "hub", "jsonl")
    data = load_task(jsonl_task(hub_id=str(folder), answer="last_number"))
    assert len(data.train) == 14 and data.train[0].answer == "2"


@pytest.mark.parametrize(
    "damage,message",
    [
        (
            lambda d: (d / "train.jsonl").write_text('{"q": "x", "a": 1}\n{"q": "y", "a": \n'),
            "train.jsonl:2: not valid JSON",
        ),
        (
            lambda d: (d / "train.jsonl").write_text('{"q": "x", "b": 1}\n'),
            "train.jsonl: no field 'a' (task.fields.answer)",
        ),
        (
            lambda d: (d / "train.jsonl").write_text('{"q": "x", "a": 1, "sol": "s"}\n{"q": "", "a": 2, "sol": "s"}\n'),
            "train.jsonl row 2: field 'q' must be a non-empty string",
        ),
        (
            lambda d: (d / "train.jsonl").write_text('{"q": "x", "a": "many", "sol": "s"}\n'),
            "train.jsonl row 1: field 'a' holds no answer under task.answer=boxed",
        ),
        (lambda d: (d / "test.jsonl").write_text(""), "test.jsonl: no rows"),
        (lambda d: (d / "test.jsonl").unlink(), "no test file"),
    ],
)
def test_bad_files_are_refused_naming_file_row_and_field(damage, message, tmp_path):
    folder = write(tmp_path / "d", "jsonl")
    damage(folder)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_task(jsonl_task(path=str(folder), answer="boxed"))


@pytest.mark.parametrize(
    "text,message",
    [
        ("q,a\nOne plus one?,2\nTwo plus, two?,4\n", "train.csv:3: 3 fields where the header has 2 (q, a)"),
        ('q,a\nOne plus one?,2\n"",3\n', "train.csv row 2: field 'q' must be a non-empty string"),
        ("q,a\nOne plus one?,\n", "train.csv row 1: field 'a' must be a non-empty string or number"),
    ],
)
def test_a_bad_csv_row_is_named(text, message, tmp_path):
    folder = write(tmp_path / "d", "csv")
    (folder / "train.csv").write_text(text)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_task(jsonl_task(path=str(folder), answer="boxed", fields={"question": "q", "answer": "a"}))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_duplicate_id_names_both_rows(fmt, tmp_path):
    folder = write(tmp_path / "d", fmt, rows=[{**r, "id": f"x{i % 13}"} for i, r in enumerate(ROWS)])
    fields = {"question": "q", "answer": "a", "solution": "sol", "id": "id"}
    message = rf"train.{fmt} row 14: id 'x0' \(field 'id', task.fields.id\) is also the id of .*train.{fmt} row 1\b"
    with pytest.raises(DataError, match=message):
        load_task(jsonl_task(path=str(folder), answer="boxed", fields=fields))


def test_a_bad_file_stops_launch_before_any_compute(tmp_path):
    folder = write(tmp_path / "d", "jsonl")
    (folder / "test.jsonl").write_text('{"q": "x", "a": null, "sol": "s"}\n')
    res = subprocess.run(
        [
            sys.executable,
            "launch.py",
            "task=jsonl",
            f"task.path={folder}",
            "task.fields.question=q",
            "task.fields.answer=a",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "test.jsonl row 1: field 'a' must be a non-empty string or number" in res.stderr
    assert not (tmp_path / "run" / "run_config.yaml").exists()


def test_an_unknown_answer_rule_is_refused():
    with pytest.raises(ConfigError, match="task.answer must be one of"):
        validate(compose(["task=jsonl", "task.path=x", "task.answer=latex"]))


# --- MATH ---------------------------------------------------------------------------------------------


def test_math500_reads_math_rows_and_judges_its_own_solutions_right():
    task = OmegaConf.merge(OmegaConf.structured(Math500TaskConfig), {"path": str(MATH_ROWS)})
    data = load_task(task)
    assert len(data.train) == 8 and len(data.eval) == 6
    assert data.train[0].answer == "\\frac{5}{6}"  # MATH train: the last box of the solution
    assert {p.answer for p in data.eval} >= {"[-2,4]", "120^\\circ"}  # MATH-500: its answer field
    verdicts = MathVerifier("math").verify([(p, p.solution) for p in data.train + data.eval])
    assert all(v["correct"] for v in verdicts)


def test_math500_composes_with_the_math_rule_and_its_hub_sources():
    cfg = compose(["task=math500"])
    assert (cfg.task.answer, cfg.task.train_hub_id, cfg.think.max_new_tokens) == (
        "math",
        "EleutherAI/hendrycks_math",
        1024,
    )
    validate(cfg)


# --- any chat model -------------------------------------------------------------------------------------


def copy_model(src: Path, dst: Path, template) -> Path:
    shutil.copytree(src, dst)
    tc = json.loads((dst / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    if template is not None:
        tc["chat_template"] = template
    (dst / "tokenizer_config.json").write_text(json.dumps(tc))
    return dst


NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_model_hf_needs_an_id_and_a_learning_rate():
    with pytest.raises(ConfigError, match="model.id, model.lr must be given"):
        validate(compose(["model=hf"]))


def test_a_chat_model_by_path_gets_its_system_role_from_its_template(tokenizer_dir, tmp_path):
    from tpt.models import load_tokenizer

    composed = compose(
        ["model=hf", f"model.id={tokenizer_dir}", "model.lr=1e-5", "backend=hf", "task.system_prompt=Be brief."]
    )
    ready = prepare(composed)
    assert ready.cfg.model.system_role is True  # SmolLM2's template takes a system turn
    assert ready.decided == {"model.system_role": True} and composed.model.system_role is None  # decided beside it

    gemma_like = copy_model(tokenizer_dir, tmp_path / "nosys", NO_SYSTEM)
    ready = prepare(
        compose(["model=hf", f"model.id={gemma_like}", "model.lr=1e-5", "backend=hf", "task.system_prompt=Be brief."])
    )
    cfg, data = ready.cfg, ready.data
    assert cfg.model.system_role is False
    tok = load_tokenizer(str(gemma_like))
    [text] = render(tok, [PromptBuilder(cfg.task, data.few_shot, cfg.model.system_role)("What is 2 + 2?")])
    assert "system" not in text and "Be brief.\n\n" in text  # folded into the first user turn, as for Gemma

    bare = copy_model(tokenizer_dir, tmp_path / "bare", None)
    with pytest.raises(ModelError, match="has no chat template"):
        system_turn_accepted(load_tokenizer(str(bare)), str(bare))
    with pytest.raises(ModelError, match="has no chat template"):
        prepare(compose(["model=hf", f"model.id={bare}", "model.lr=1e-5", "backend=hf"]))


# --- the whole loop, as CPU miniatures ------------------------------------------------------------------

# data.shortfall=warn: a short round trains on what it has instead of thinking again (seconds, not minutes)
SMALL = [
    "cache=off",
    "rounds=1",
    "task.eval_questions=4",
    "task.train_questions=8",
    "think.n=4",
    "eval.n=2",
    "eval.k=[1,2]",
    "backend=hf",
    "data.scale=0.003",
    "data.shortfall=warn",
]  # 2k examples -> 6 of the 8 questions


def run_miniature(*overrides, sweep: Path):  # the whole loop, once
    res = subprocess.run(
        [sys.executable, "launch.py", "-m", *overrides, "miniature=true", *SMALL, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    [cell] = [c for c in sweep.iterdir() if (c / "metrics.jsonl").is_file()]
    pinned = OmegaConf.load(cell / "run_config.yaml")
    assert (pinned.task.name, pinned.model.name) == (
        "arith",
        "smollm2_135m",
    )  # the bundled problems, the embedded model
    assert [json.loads(line)["round"] for line in (cell / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    samples = [json.loads(line) for line in (cell / "round_0" / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8
    return pinned, samples


def test_a_jsonl_cell_becomes_its_miniature_with_its_answer_rule(tmp_path, caplog):
    """A miniature runs the bundled problems whatever the math task (the loop on them: the math500 cell
    below); what it keeps of a jsonl task is its answer rule, in the instruction and the worked examples.
    The settings of the jsonl data it replaces are not used, and it says so."""
    import logging

    from tpt.tasks import load_task

    folder = write(tmp_path / "mine", "jsonl")
    overrides = [
        "task=jsonl",
        f"task.path={folder}",
        "task.fields.question=q",
        "task.fields.answer=a",
        "task.answer=boxed",
        "miniature=true",
    ]
    with caplog.at_level(logging.WARNING, logger="tpt.miniature"):
        cfg = compose(overrides)
    assert f"task.path={folder} task.fields.question=q task.fields.answer=a set jsonl's data" in caplog.text
    assert cfg.task.path is None and cfg.miniature_of == "jsonl"
    validate(cfg)
    assert (cfg.task.name, cfg.model.name) == ("arith", "smollm2_135m")
    shots = load_task(cfg.task).train[:2]
    prompt = PromptBuilder(cfg.task, shots, True)
    assert cfg.task.answer == "boxed" and "boxed" in prompt.instruction
    assert all(
        f"The answer is $\\boxed{{{p.answer}}}$." in answer and "####" not in answer
        for p, (_, answer) in zip(shots, prompt.few_shot)
    )  # not the bundled '#### N'


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_math500_cell_runs_as_its_miniature(tmp_path):
    pinned, samples = run_miniature("task=math500", sweep=tmp_path / "sweep")
    assert pinned.task.answer == "math"
    assert all("timeout" in s for s in samples)  # judged by math-verify
