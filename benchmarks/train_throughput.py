"""Training throughput and loss of the train stage (TRL SFT), fp32 beside bf16 mixed precision, and
glibc's memory settings beside tpt's for a training process, on the same examples in one run.

    python benchmarks/train_throughput.py [--model DIR_OR_HUB_ID] [--examples 32 --batch-size 8]
        [--precisions fp32,bf16] [--malloc glibc,tpt] [--strategy single|ddp|fsdp --processes 2]
        [--gradient-checkpointing]

Examples are the arith task's prompts with their worked solutions as completions. Prints, per
precision and memory setting, the optimizer steps, training tokens (prompt + completion, as the model
sees them), seconds of training (model loading excluded), tokens/s, the first, last and mean loss, so
the bf16 loss can be read against fp32's, and the training's FLOP/s (6 x parameters x tokens / s)
beside a plain torch matmul's in the same precision on this CPU (the model's own shapes). `glibc`:
every block of 32 MiB or more mapped on its own (what a training process had before
tpt.runtime.TRAINING_MALLOC); `tpt`: that setting. Default model: the embedded SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from tpt.compose import compose
from tpt.lineage import base_model
from tpt.models import load_tokenizer, resolve
from tpt.prompt import PromptBuilder
from tpt.tasks import load_task
from tpt.training.sft import sft, to_conversations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--strategy", default="single")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--malloc", default="tpt", help="glibc,tpt: both memory settings, side by side")
    args = parser.parse_args()
    model = resolve(args.model)
    tok = load_tokenizer(model)
    rows = []
    runs = [(p, m) for p in args.precisions.split(",") for m in args.malloc.split(",")]
    for precision, malloc in runs:
        cfg = compose(
            [
                "task=arith",
                f"train.batch_size={args.batch_size}",
                f"train.global_batch_size={args.batch_size * args.processes}",
                f"model.train_strategy={args.strategy}",
                f"model.gpus={args.processes}",
                f"model.gradient_checkpointing={args.gradient_checkpointing}",
                "train.lr=2e-5",
                f"train.bf16={precision == 'bf16'}",
            ]
        )
        data = load_task(cfg.task)
        prompt = PromptBuilder(cfg.task, data.few_shot, system_role=True)
        records = [{"question": p.question, "completion": p.solution} for p in data.train[: args.examples]]
        examples = to_conversations(records, prompt)
        texts = [tok.apply_chat_template(e["prompt"] + e["completion"], tokenize=False) for e in examples]
        tokens = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            with malloc_setting(malloc):
                result = sft(base_model(args.model, model, None), examples, Path(out) / "model", cfg.train)
            wall = time.perf_counter() - start
        rows.append((f"{precision}, {malloc}", result, tokens, result["seconds"] or wall, wall))
    print(
        f"\n{args.model} ({args.strategy}, {args.processes} process(es)), {args.examples} examples, "
        f"batch {args.batch_size}"
    )
    params, shapes = model_size(model)
    peak = {p: matmul_tflops(shapes, p) for p in args.precisions.split(",")}
    print("torch matmul on this CPU, the model's shapes: " + ", ".join(f"{p} {t:.2f} TFLOP/s" for p, t in peak.items()))
    print(
        f"{'run':<14}{'steps':>6}{'tokens':>8}{'train s':>9}{'tok/s':>7}{'TFLOP/s':>9}{'of matmul':>10}"
        f"{'first loss':>12}{'last loss':>11}{'mean loss':>11}{'with loading s':>16}"
    )
    for name, r, tokens, seconds, wall in rows:
        tflops = 6 * params * tokens / seconds / 1e12
        print(
            f"{name:<14}{r['steps']:>6}{tokens:>8}{seconds:>9.1f}{tokens / seconds:>7.0f}{tflops:>9.3f}"
            f"{tflops / peak[name.split(',')[0]]:>10.0%}{r['first_loss']:>12.4f}{r['last_loss']:>11.4f}"
            f"{r['train_loss']:>11.4f}{wall:>16.1f}"
        )


@contextlib.contextmanager
def malloc_setting(name: str):
    """`tpt`: as tpt starts a training process; `glibc`: without tpt.runtime.TRAINING_MALLOC."""
    from tpt.training import strategies

    real = strategies.training_environment
    if name == "glibc":
        strategies.training_environment = dict
    try:
        yield
    finally:
        strategies.training_environment = real


def model_size(path: str):
    """(parameters, the matmul shapes of one layer and the head at 2,048 tokens) from config.json."""
    import json

    c = json.loads((Path(path) / "config.json").read_text())
    hidden, inter, vocab, layers = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    head_dim = hidden // heads
    per_layer = hidden * head_dim * (heads + 2 * kv) + heads * head_dim * hidden + 3 * hidden * inter
    params = layers * per_layer + vocab * hidden
    tokens = 2048
    return params, [(tokens, hidden, inter), (tokens, inter, hidden), (tokens, hidden, hidden), (tokens, hidden, vocab)]


def matmul_tflops(shapes, precision: str, repeats: int = 10) -> float:
    """A plain torch matmul's throughput over `shapes` (m, k, n), best of `repeats`."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    flops = seconds = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b
        best = min(_timed(lambda a=a, b=b: a @ b) for _ in range(repeats))
        flops, seconds = flops + 2 * m * k * n, seconds + best
    return flops / seconds / 1e12


def _timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
