"""`--plan`: what a command would run, before any GPU-hour, checked against figures computed by hand."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tpt.experiments import TABLES
from tpt.plan import plan


def multirun_jobs(overrides, sweep_dir):
    """The jobs a real `python launch.py -m <overrides>` launches: Hydra's own sweeper and launcher, in
    this process, with a task function that records each job's overrides instead of running the cell."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from tpt.compose import CONF_DIR, register

    register()
    jobs = []

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def record(cfg):
        jobs.append(list(HydraConfig.get().overrides.task))

    argv = sys.argv
    sys.argv = [
        "launch.py",
        "-m",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    try:
        GlobalHydra.instance().clear()
        record()
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    return jobs


@pytest.mark.parametrize(
    "overrides",
    [
        *([f"+experiment={t}"] for t in TABLES),
        ["+experiment=table3", "row=t3_2b"],  # one row of a table: one cell, not the table crossed with it
        ["+experiment=table2", "row=t2_2b_self_1k,t2_9b_self_1k", "miniature=true"],
        ["+experiment=table5", "data.seed=1,2"],
        ["data_size=1k,2k,4k,6k", "pruning=gt,none"],
        ["pruning=gt,none", "data.size=4", "rounds=1"],
    ],
)
def test_the_plan_has_the_cells_a_real_multirun_launches(overrides, tmp_path):
    planned = [p.overrides for p in plan(overrides, runs=None)]
    launched = multirun_jobs(overrides, tmp_path)
    assert sorted(map(sorted, planned)) == sorted(map(sorted, launched))
    keys = [[o.split("=", 1)[0].lstrip("+") for o in cell] for cell in planned]
    assert all(len(k) == len(set(k)) for k in keys)  # no cell names a key twice


def by_row(plans):
    return {next(o.split("=", 1)[1] for o in p.overrides if o.startswith("row=")): p for p in plans}


@pytest.mark.parametrize("table", TABLES)
def test_every_table_has_a_plan(table):
    plans = plan([f"+experiment={table}"], runs=None)
    assert plans and all("gpu_hours" in p.figures or p.warnings for p in plans)


def test_table3_gemma_2b_row_by_hand():
    p = by_row(plan(["+experiment=table3"], runs=None))["t3_2b"]
    f = p.figures
    # GSM8K: 7,473 train questions x 10 samples x 4 rounds; 500 eval questions x 20 samples x 5 evals
    assert (f["train_questions"], f["think_samples"], f["eval_samples"]) == (7473, 298_920, 50_000)
    # at most 4 resample batches a round, each 10 more samples per question; 512 new tokens each
    assert f["generated_tokens_at_most"] == (298_920 + 4 * 298_920 + 50_000) * 512 == 790_835_200
    assert f["trained_tokens_at_most"] == 2000 * (200 + 512) * 4  # size x (prompt + new tokens) x rounds
    assert (f["global_batch"], f["micro_batch"], f["accumulation"], f["steps_per_round"]) == (16, 4, 4, 125)
    assert f["checkpoint_disk_gb"] == round(4 * 2.61e9 * 2 / 1e9, 1) == 20.9  # 4 bf16 checkpoints
    # Training: fp32 weights, grads and AdamW (16 B a parameter) and autocast's bf16 copy (2); with
    # checkpointing (the preset's) each layer's fp32 input and one layer's activations at the measured
    # bytes a token (Gemma-2: 42.20 x hidden + 13.84 x MLP + 20.72 x heads x seq, eager attention), and
    # the logits (15.37 x vocab a token), for a micro-batch of 4 (conf/task/gsm8k.yaml) x 712 tokens
    tokens = 712 * 4
    states, inputs = 18 * 2.61e9, 4 * tokens * 2304 * 26
    layer = tokens * (42.20 * 2304 + 13.84 * 9216 + 20.72 * 8 * 712)
    logits = 15.37 * tokens * 256000
    assert f["train_memory_gb"] == round((states + inputs + layer + logits) / 1e9 + 3, 1) == 62.8
    assert f["expected_available"] == int(7473 * 0.76)  # the paper's Pass@20 of the 2B baseline: 76.0%
    assert not any("likely not reached" in w for w in p.warnings)
    # One GPU on one node for 12 h (conf/model/gemma2_2b_it.yaml); keep=last would keep every checkpoint
    # too, through the checkpoint cache's hard links (test_disk_counts_the_caches_links_and_the_fp32_save)
    assert (f["gpus"], f["nodes"], f["hours"]) == (1, 1, 12.0)
    assert (f["checkpoint_disk_gb_all"], f["checkpoint_disk_gb_last"]) == (20.9, 20.9)
    # vLLM: bf16 weights on one rank + KV cache of 256 sequences of 200 + 512 tokens (26 layers, 4 KV
    # heads of 256, K and V, 2 bytes)
    kv = 2 * 26 * 4 * 256 * 2 * 712 * 256
    assert f["vllm_memory_gb"] == round((2 * 2.61e9 + kv) / 1e9 + 3, 1) == 27.6
    # GPU-hours: 6 x params FLOPs per trained token at 35% of 312 TFLOP/s; 2 x params per generated
    # token and per prompt token (200, once per question: 7,473 x 5 think batches x 4 rounds, 500 x 5
    # evals), at 30%
    train_s = 6 * 2.61e9 * (2000 * 712 * 4) / (0.35 * 312e12)
    generate_s = 2 * 2.61e9 * (790_835_200 + 200 * (7473 * 5 * 4 + 500 * 5)) / (0.3 * 312e12)
    assert f["gpu_hours"] == round((train_s + generate_s) / 3600, 2) == 12.95


def test_table7_gemma_2b_6k_row_by_hand():
    p = by_row(plan(["+experiment=table7"], runs=None))["t7_2b_self_6k"]
    f = p.figures
    assert (f["train_questions"], f["data_size"], f["steps_per_round"]) == (13328, 6000, 375)  # 6,000 / 16
    assert f["expected_available"] == int(13328 * 0.057) == 759  # Pass@50 of the 2B baseline: 5.70%
    assert any("data size 6000 likely not reached: about 759 questions" in w for w in p.warnings)
    assert p.figures["micro_batch"] == 2 and p.figures["train_memory_gb"] < 80  # code rows: micro-batches of 2


def test_an_engine_that_does_not_fit_names_the_tensor_parallelism_that_would():
    """Gemma-2-9B on one 24 GB GPU: bf16 weights (18.5 GB) and the CUDA overhead (3) leave 0.1 GB of
    vLLM's 0.9 x 24 = 21.6 GB, less than one sequence of 200 + 1024 tokens takes (42 layers, 8 KV
    heads of 256, K and V, 2 bytes: 0.42 GB). Over 2 GPUs it fits."""
    [p] = plan(
        [
            "model=gemma2_9b_it",
            "model.tensor_parallel_size=1",
            "task=gsm8k",
            "think.max_new_tokens=1024",
            "cluster.gpu_memory_gb=24",
        ],
        runs=None,
    )
    kv = 2 * 42 * 8 * 256 * 2 * (200 + 1024)
    assert p.figures["vllm_sequences"] == 0
    assert p.figures["vllm_memory_gb"] == round((2 * 9.24e9 + kv) / 1e9 + 3, 1) == 21.9  # one sequence's worth
    assert any("does not fit its engine" in w and "model.tensor_parallel_size >= 2" in w for w in p.warnings)
    [fits] = plan(["model=gemma2_9b_it", "task=gsm8k", "cluster.gpu_memory_gb=141"], runs=None)
    assert fits.figures["vllm_sequences"] == 256 and not any("vLLM" in w or "fit" in w for w in fits.warnings)


def test_generation_is_timed_with_the_sequences_that_fit():
    """On 80 GB: (0.9 x 80 - 18.48 - 3) GB / 0.42 GB = 119 sequences of 200 + 1024 tokens in flight, not
    the assumed 256: generation is taken as 256/119 times slower (decoding bound by memory bandwidth),
    and said."""
    kv = 2 * 42 * 8 * 256 * 2 * (200 + 1024)
    sequences = int((0.9 * 80e9 - 2 * 9.24e9 - 3e9) // kv)
    assert sequences == 119
    base = ["model=gemma2_9b_it", "model.tensor_parallel_size=1", "task=gsm8k", "think.max_new_tokens=1024"]
    [p] = plan([*base, "cluster.gpu_memory_gb=80"], runs=None)
    [roomy] = plan([*base, "cluster.gpu_memory_gb=1000"], runs=None)
    assert p.figures["vllm_sequences"] == sequences and roomy.figures["vllm_sequences"] == 256
    assert any(f"fits {sequences} sequences in flight, not 256" in w for w in p.warnings)
    train_s = 6 * 9.24e9 * p.figures["trained_tokens_at_most"] / (0.35 * 312e12)
    generate = lambda f: f["gpu_hours_used"] * 3600 - train_s  # noqa: E731
    assert generate(p.figures) == pytest.approx(generate(roomy.figures) * 256 / sequences, rel=1e-3)


def test_gpu_hours_are_the_gpus_held_for_the_wall_time():
    """The 70B cell holds 16 GPUs (2 nodes x 8) for its whole wall time; training uses all 16, its one
    engine 8 (TP 8): generation's GPU-hours are billed twice over."""
    [p] = plan(["model=llama3_3_70b_instruct", "task=gsm8k"], runs=None)
    f = p.figures
    train_s = 6 * 70.6e9 * f["trained_tokens_at_most"] / (0.35 * 312e12)
    generate_s = f["gpu_hours_used"] * 3600 - train_s
    wall_s = train_s / 16 + generate_s / 8
    # gpu_hours_used is rounded to 0.01 h: the hand figures are within that
    assert f["wall_hours"] == pytest.approx(wall_s / 3600, abs=0.01)
    assert f["gpu_hours"] == pytest.approx(wall_s * 16 / 3600, abs=0.05)
    assert f["gpu_hours"] == pytest.approx(f["gpu_hours_used"] + generate_s / 3600, abs=0.05)
    [one] = plan(["model=gemma2_2b_it", "task=gsm8k"], runs=None)  # one GPU: held = used
    assert one.figures["gpu_hours"] == one.figures["gpu_hours_used"]


def test_a_distillation_teacher_is_planned_with_its_own_shape():
    """Table 2's 2B distill row: Gemma-2-9B thinks on the student's one GPU. Its engine (18.5 GB of
    weights and the KV cache of the sequences that fit), its think cost (9.24e9 parameters, not the
    student's 2.61e9) and its solve rate (the paper's 9B baseline, Pass@20 88.4%) are the plan's."""
    [p] = plan(["+experiment=table2", "row=t2_2b_distill_1k"], runs=None)
    [self_row] = plan(["+experiment=table2", "row=t2_2b_self_1k"], runs=None)
    f, g = p.figures, self_row.figures
    assert f["teacher"] == "gemma-2-9b-it" and "teacher" not in g
    kv = 2 * 42 * 8 * 256 * 2 * (200 + 512)  # a sequence of the teacher's, bytes
    fit = int((0.9 * 80e9 - 2 * 9.24e9 - 3e9) // kv)
    assert f["teacher_vllm_sequences"] == fit == 206
    assert f["teacher_vllm_memory_gb"] == round((2 * 9.24e9 + fit * kv) / 1e9 + 3, 1)
    assert f["expected_available"] == int(7473 * 0.884) and g["expected_available"] == int(7473 * 0.76)
    # think: the same tokens as the self row, at 9.24 / 2.61 the FLOPs and 256 / 206 the time
    think_self = g["gpu_hours_used"] - predicted_eval_and_train(g)
    think_teacher = f["gpu_hours_used"] - predicted_eval_and_train(g)
    assert think_teacher == pytest.approx(think_self * 9.24 / 2.61 * 256 / fit, rel=0.01)


def predicted_eval_and_train(f) -> float:
    """GPU-hours of a Table 2 2B row's training (1k examples of 712 tokens, one round) and eval (500
    questions x 20 samples x 2 evals of 512 new tokens + the 200-token prompt once per question)."""
    peak = 312e12
    train_s = 6 * 2.61e9 * f["trained_tokens_at_most"] / (0.35 * peak)
    eval_s = 2 * 2.61e9 * (20_000 * 512 + 200 * 1000) / (0.3 * peak)
    return (train_s + eval_s) / 3600


def test_a_teacher_that_does_not_fit_the_students_gpus_is_named():
    [p] = plan(
        ["model=gemma2_2b_it", "task=gsm8k", "source=distill", "source.teacher=meta-llama/Llama-3.3-70B-Instruct"],
        runs=None,
    )
    assert p.figures["teacher_vllm_sequences"] == 0
    # 141 GB of bf16 weights: over 2 GPUs 70.6 GB, more than 0.9 x 80 - 3; over 4, 35.3
    assert any(
        "the teacher meta-llama/Llama-3.3-70B-Instruct does not fit its engine" in w
        and "model.tensor_parallel_size >= 4" in w
        for w in p.warnings
    )


def test_disk_counts_the_caches_links_and_the_fp32_save():
    """Gemma-2-2B, 4 rounds: a bf16 checkpoint is 2.61e9 x 2 B = 5.2 GB, its transient fp32 save
    2.61e9 x 4 B = 10.4 GB. The checkpoint cache links every round's weights, so train.keep=last frees
    nothing while it is on; without it keep=last leaves one; with copies, the cache's four come on top."""
    ckpt, fp32 = 2.61e9 * 2 / 1e9, 2.61e9 * 4 / 1e9
    base = ["model=gemma2_2b_it", "task=gsm8k", "rounds=4"]

    def disk(*extra):
        [p] = plan([*base, *extra], runs=None)
        f = p.figures
        return f["checkpoint_disk_gb"], f["disk_peak_gb"], p.warnings

    assert disk("train.keep=all")[:2] == (round(4 * ckpt, 1), round(3 * ckpt + fp32, 1))
    linked, peak, warnings = disk("train.keep=last")
    assert (linked, peak) == (round(4 * ckpt, 1), round(3 * ckpt + fp32, 1))
    assert any("train.keep=last frees no disk" in w and "cache.trained=false" in w for w in warnings)
    # no cache: the last round's weights, and while they are saved the round before's (deleted after)
    alone, peak, warnings = disk("train.keep=last", "cache.trained=false")
    assert (alone, peak) == (round(ckpt, 1), round(ckpt + fp32, 1))
    assert not any("frees no disk" in w for w in warnings)
    copied, peak, _ = disk("train.keep=last", "cache.copy_checkpoints=true")
    assert (copied, peak) == (round(5 * ckpt, 1), round(ckpt + 3 * ckpt + fp32, 1))
    # the 70B: its fp32 save alone is 282 GB
    [p] = plan(["model=llama3_3_70b_instruct", "task=gsm8k", "rounds=1"], runs=None)
    assert p.figures["disk_peak_gb"] == round(70.6e9 * 4 / 1e9, 1) == 282.4


def test_code_verification_time_is_planned_and_a_round_that_cannot_finish_is_named():
    """Table 7's 2B row, one round: 13,328 train questions x 10 samples, with up to 4 resample batches,
    and 140 eval questions x 50 samples x 2 evals; each program on 100 tests (assumed) at 0.055 s a run
    (measured), 5.5 s, under the 120 s budget: ~1,040 CPU-h, ~130 h on the preset's 8 CPUs, past its 12 h."""
    p = by_row(plan(["+experiment=table7"], runs=None))["t7_2b_self_1k"]
    f = p.figures
    programs = 13328 * 10 * 5 + 140 * 50 * 2
    assert programs == f["think_samples"] + f["resample_at_most"] + f["eval_samples"]
    assert f["verify_cpu_hours"] == round(programs * 100 * 0.055 / 3600, 1) == 1039.5
    assert any("judging a round's programs takes up to ~129.9 h on the cell's 8 CPUs" in w for w in p.warnings)
    # capped tests, a smaller budget, and the assumptions' overrides move it; a math cell has none
    [capped] = plan(["+experiment=table7", "row=t7_2b_self_1k", "task.code.max_tests=10"], runs=None)
    assert capped.figures["verify_cpu_hours"] == round(programs * 10 * 0.055 / 3600, 1)
    [budget] = plan(["+experiment=table7", "row=t7_2b_self_1k", "task.code.program_budget_s=1"], runs=None)
    assert budget.figures["verify_cpu_hours"] == round(programs * 1.0 / 3600, 1)
    [assumed] = plan(
        ["+experiment=table7", "row=t7_2b_self_1k"], runs=None, assume={"tests_per_problem.codecontests": 5}
    )
    assert assumed.figures["verify_cpu_hours"] == round(programs * 5 * 0.055 / 3600, 1) == 52.0
    assert not any("judging" in w for w in assumed.warnings)  # one round: 6.5 h on 8 CPUs, within 12 h
    [maths] = plan(["model=gemma2_2b_it", "task=gsm8k"], runs=None)
    assert "verify_cpu_hours" not in maths.figures


def test_different_global_batches_in_one_sweep_are_flagged():
    plans = plan(["model=gemma2_2b_it", "task=gsm8k", "train.global_batch_size=16,32"], runs=None)
    assert len(plans) == 2 and all(any("different global batches [16, 32]" in w for w in p.warnings) for p in plans)


def test_an_unreachable_size_and_a_cut_are_warned():
    [p] = plan(["data.size=1000", "train.max_length=100"], runs=None)  # the embedded default: 48 questions
    assert any("exceeds the 48 train questions" in w for w in p.warnings)
    assert any("train.max_length=100 < prompt" in w for w in p.warnings)


def test_launch_plan_prints_the_table_and_runs_nothing(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "launch.py",
            "-m",
            "+experiment=table6",
            "--plan",
            "--gpu",
            "h100-80gb",
            "--runs",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "| row=t6_llama70b | llama3_3_70b_instruct | 16 |" in res.stdout and "Sweep: 2 cell(s)" in res.stdout
    assert "Launching" not in res.stdout + res.stderr  # Hydra's launcher never started
    assert "gpu_memory_gb=80" in res.stdout


@pytest.mark.parametrize(
    "assume, message",
    [
        ("train_mfu=high", "--assume train_mfu=high: train_mfu takes a number, as in --assume train_mfu=0.35"),
        ("train_mfw=0.4", "unknown assumption 'train_mfw'"),
    ],
)
def test_a_bad_assumption_is_one_line_naming_the_fix(assume, message):
    res = subprocess.run(
        [sys.executable, "-m", "tpt.plan", "+experiment=table6", "--assume", assume],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_a_second_plan_reads_the_solve_rate_an_earlier_run_measured(tmp_path):
    import json

    from omegaconf import OmegaConf

    from tests.conftest import compose

    cell = tmp_path / "earlier"
    (cell / "round_1" / "prune").mkdir(parents=True)
    OmegaConf.save(compose([]), cell / "run_config.yaml")  # the embedded default, arith, 4 samples
    (cell / "round_1" / "prune" / "stats.json").write_text(json.dumps({"questions": 48, "questions_with_correct": 12}))
    [first] = plan([], runs=tmp_path / "none")
    [second] = plan([], runs=tmp_path)
    assert "expected_available" not in first.figures  # the paper has no baseline of the embedded model
    assert second.figures["expected_available"] == 12
    assert any(
        "data size 24 likely not reached: about 12 questions of 48 get a correct sample (measured by an "
        "earlier run: 25.0% at 4 samples)" in w
        for w in second.warnings
    )


@pytest.mark.parametrize("table", TABLES)
def test_every_paper_row_fits_its_gpus_by_the_plans_estimate(table):
    """The presets' layouts (the 70B preset offloads its FSDP shards; code rows train in micro-batches
    of 2) leave every row's training within 80 GB a GPU, and every engine's weights within vLLM's share."""
    for p in plan([f"+experiment={table}"], runs=None):
        assert p.figures["train_memory_gb"] <= 0.9 * 80, (p.overrides, p.figures["train_memory_gb"])
        assert not any("training needs" in w or "does not fit" in w for w in p.warnings), p.warnings
        assert p.figures["vllm_memory_gb"] <= 0.9 * 80 and p.figures["vllm_sequences"] >= 128, p.figures


def test_the_activation_terms_are_the_recorded_measurements_fits():
    """tpt/plan.py's ACTIVATION_BYTES are the fits benchmarks/train_memory.py recorded (rounded to 0.01),
    and the plan's estimate of every recorded shape, held-out ones included, is within 15% of its
    measured peak (docs/benchmarks.md, "Training memory")."""
    import json

    from tpt.plan import ACTIVATION_BYTES, cpu_training_memory_terms

    recorded = json.loads((ROOT / "benchmarks" / "results" / "train_memory.json").read_text())
    for arch, fit in recorded["fits"].items():
        assert ACTIVATION_BYTES[arch] == {k: round(v, 2) for k, v in fit.items()}, arch
    held_out = 0
    for row in recorded["rows"]:
        estimate = sum(cpu_training_memory_terms(row).values())
        assert abs(estimate / row["peak_bytes"] - 1) < 0.15, row
        held_out += row["held_out"]
    assert held_out == 4


def test_the_70b_preset_would_not_fit_without_offloading():
    [p] = plan(["model=llama3_3_70b_instruct", "task=gsm8k", "model.offload_params=false"], runs=None)
    assert p.figures["train_memory_gb"] > 80 and any("training needs" in w for w in p.warnings)
