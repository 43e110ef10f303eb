"""Train/eval overlap (tpt/contamination.py): by word n-grams, its normalisation, the overlaps against a
brute-force pairwise check and against lm-eval's own decontamination code on the real GSM8K; by whole
questions for the generated tasks; a cell's contamination.json, and task.decontaminate."""

import json

from tests.conftest import compose
from tpt.contamination import check, ngrams, overlaps, words
from tpt.preflight import decontaminated
from tpt.tasks import load_task
from tpt.tasks.base import Problem


def test_text_is_normalised_to_letters_and_digits():
    assert (
        words("Natalia sold clips to 48 of her friends in April, and then she sold half as many")
        == "natalia sold clips to 48 of her friends in april and then she sold half as many".split()
    )
    assert words("It's $1,200.50!") == ["it", "s", "1", "200", "50"]
    assert ngrams("a b c", 2) == {("a", "b"), ("b", "c")} and ngrams("a b", 3) == set()


def test_overlaps_name_every_eval_question_sharing_an_ngram():
    evals = [
        ("e1", "Tom has five red apples and three green pears in a basket"),
        ("e2", "How many legs do nine spiders have altogether"),
    ]
    train = [
        ("t1", "TOM HAS FIVE RED APPLES, and three green pears in a BASKET!"),  # e1 again, other case and marks
        ("t2", "Sara counts how many legs do nine spiders have altogether today"),  # e2's 8 words inside
        ("t3", "Tom has five red apples and two"),
    ]  # 5 words in common: less than 8
    assert overlaps(train, evals, 8) == {"t1": ["e1"], "t2": ["e2"]}
    assert overlaps(train, evals, 5) == {"t1": ["e1"], "t2": ["e2"], "t3": ["e1"]}


def test_on_the_real_gsm8k_the_overlaps_are_what_a_pairwise_check_finds(gsm8k_dir):
    rows = {split: [json.loads(l) for l in (gsm8k_dir / f"{split}.jsonl").open()] for split in ("train", "test")}
    train = [Problem(f"train-{i}", r["question"], r["answer"]) for i, r in enumerate(rows["train"])]
    test = [Problem(f"test-{i}", r["question"], "") for i, r in enumerate(rows["test"])]
    report = check(train, test, 8, with_solutions=False)
    # Brute force on the first 500 train questions: every pair's n-gram sets intersected.
    grams = {p.id: ngrams(p.question, 8) for p in test}
    for p in train[:500]:
        mine = ngrams(p.question, 8)
        assert report["pairs"].get(p.id, []) == sorted(e for e, g in grams.items() if mine & g), p.id
    print(
        f"GSM8K train vs test, 8-grams: {report['overlapping_train']} of {report['train_questions']} train "
        f"questions overlap {report['overlapping_eval']} of {report['eval_questions']} test questions"
    )


def test_on_the_real_gsm8k_lm_evals_janitor_finds_a_subset_and_punctuation_is_the_difference(gsm8k_dir):
    """lm-eval's decontamination (lm_eval.decontamination.janitor: lower case, punctuation deleted, split on
    whitespace) run on the same files, at n=8, over the cell's own train and eval questions: every train
    question it flags, tpt flags; each one only tpt flags overlaps once punctuation splits words instead
    of joining them (`2/5` is `2 5` to tpt, `25` to the janitor)."""
    from lm_eval.decontamination.janitor import Janitor, word_ngrams

    cfg = compose(["task=gsm8k", f"task.path={gsm8k_dir}"])
    data = load_task(cfg.task)
    ours = set(check(data.train, data.eval, 8, with_solutions=False)["pairs"])

    def janitor_flags(janitor):
        dirt = set()
        for p in data.eval:
            dirt.update(word_ngrams(janitor.normalize_string(p.question), 8))
        return {
            p.id for p in data.train if any(g in dirt for g in word_ngrams(janitor.normalize_string(p.question), 8))
        }

    theirs = janitor_flags(Janitor(ngram_n=8))
    assert theirs and theirs <= ours
    spaced = Janitor(ngram_n=8)  # the same janitor, with punctuation turned into spaces as tpt does
    spaced.normalize_string = lambda s: " ".join(words(s))
    assert janitor_flags(spaced) == ours
    print(
        f"GSM8K (the cell's 500 eval questions), 8-grams: tpt flags {len(ours)} train questions, lm-eval's janitor "
        f"{len(theirs)}; the {len(ours - theirs)} others differ by punctuation inside a word"
    )


def test_generated_tasks_count_only_a_whole_eval_question_as_a_leak():
    """Bundled problems come from templates, so every pair shares 8-grams (47 of 48 arith train questions did
    with eval ones): the exact rule counts a train question or solution that contains a whole eval question."""
    evals = [("e1", "Ava has 3 apples. Ava buys 2 more apples. How many apples does Ava have now?")]
    train = [
        ("t1", "Ben has 3 apples. Ben buys 2 more apples. How many apples does Ben have now?"),  # the template
        ("t2", "ava has 3 apples, ava buys 2 more apples; how many apples does ava have now"),  # the question
        ("t3/self", "Restating it: Ava has 3 apples. Ava buys 2 more apples. How many apples does Ava have now? 5"),
    ]
    assert overlaps(train, evals, 8) == {"t1": ["e1"], "t2": ["e1"], "t3/self": ["e1"]}
    assert overlaps(train, evals, 8, rule="exact") == {"t2": ["e1"], "t3/self": ["e1"]}
    for task in ("arith", "minicode"):  # the bundled tasks say so in their YAML
        cfg = compose([f"task={task}"])
        report = decontaminated(cfg, load_task(cfg.task)).contamination
        assert (cfg.task.contamination, report["rule"], report["overlapping_train"]) == ("exact", "exact", 0)


def test_the_default_run_starts_without_a_contamination_warning(caplog):
    import logging

    cfg = compose([])
    with caplog.at_level(logging.WARNING):
        decontaminated(cfg, load_task(cfg.task))
    assert "contamination" not in caplog.text
    with caplog.at_level(logging.WARNING):  # the n-gram rule on template problems: the alarm the rule avoids
        decontaminated(compose(["task.contamination=ngram"]), load_task(cfg.task))
    assert "47 of 48 train questions share a 8-gram with 112 of the 128 eval questions" in caplog.text


def jsonl_cell(tmp_path, *extra):
    rows = [
        {"q": f"Question number {i}: what is {i} plus {i} when counted by a careful child", "a": 2 * i}
        for i in range(12)
    ]
    rows[3]["q"] = rows[10]["q"]  # a train question that is also a test question
    folder = tmp_path / "data"
    folder.mkdir(parents=True)
    for name, part in (("train", rows[:8]), ("test", rows[8:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return compose(
        [
            "task=jsonl",
            f"task.path={folder}",
            "task.fields.question=q",
            "task.fields.answer=a",
            "task.eval_questions=4",
            *extra,
        ]
    )


def test_a_cell_reports_its_overlap_and_decontaminate_drops_it(tmp_path):
    cfg = jsonl_cell(tmp_path)
    data = decontaminated(cfg, load_task(cfg.task))
    report = data.contamination
    assert (report["ngram"], report["overlapping_train"], report["overlapping_eval"]) == (8, 1, 1)
    [(train_id, eval_ids)] = report["pairs"].items()
    assert len(data.train) == 8 and train_id in {p.id for p in data.train}
    assert [p.question for p in data.eval if p.id in eval_ids] == [p.question for p in data.train if p.id == train_id]

    cfg = jsonl_cell(tmp_path / "again", "task.decontaminate=true")
    data = decontaminated(cfg, load_task(cfg.task))
    assert len(data.train) == 7 and train_id not in {p.id for p in data.train}
    assert data.contamination["dropped_train"] == 1


def test_a_rounds_training_solutions_are_checked_and_reported(tmp_path, capsys):
    """A teacher's solution that restates an eval question is a leak the question check cannot see:
    the round's contamination.json names the pair and `tpt.report` prints it."""
    from tpt.contamination import check_solutions
    from tpt.report import main

    evals = [
        Problem("e1", "A train travels 270 miles in 3 hours at a constant speed, how fast?", "", "90"),
        Problem("e2", "Tom has 3 apples and eats one.", "", "2"),
    ]
    records = [
        {
            "qid": "t1",
            "origin": "teacher",
            "completion": "As in: a train travels 270 miles in 3 hours at a constant speed. So 90. #### 90",
        },
        {"qid": "t2", "origin": "teacher", "completion": "Add them: 2 + 2 = 4. #### 4"},
    ]
    leaks = check_solutions(records, evals, 8)
    assert (leaks["compared"], leaks["overlapping_examples"], leaks["pairs"]) == (
        "training solutions (teacher)",
        1,
        {"t1/teacher": ["e1"]},
    )
    assert check_solutions(records, evals, 13)["overlapping_examples"] == 0  # 12 words shared, not 13

    cell = tmp_path / "cell"
    (cell / "round_1" / "prune").mkdir(parents=True)
    (cell / "run_config.yaml").write_text("rounds: 1\nmodel: {name: m}\ntask: {name: gsm8k}\n")
    (cell / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "round": r,
                    "pass@1": 0.5,
                    "pass@4": 0.6,
                    "correct@4": 0.6,
                    "distinct_answers": 2.0,
                    "text_diversity": 0.5,
                }
            )
            + "\n"
            for r in (0, 1)
        )
    )
    (cell / "contamination.json").write_text(
        json.dumps({"ngram": 8, "overlapping_train": 0, "overlapping_eval_ids": []})
    )
    (cell / "round_1" / "prune" / "contamination.json").write_text(json.dumps(leaks))
    main([str(tmp_path)])
    assert "- cell: round 1 solutions: 1 share a 8-gram with 1 eval questions (e1)" in capsys.readouterr().out
