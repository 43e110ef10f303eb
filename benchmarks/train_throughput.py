"""Training throughput and loss of the train stage (TRL SFT), fp32 beside bf16 mixed precision, on
the same examples in one run.

    python benchmarks/train_throughput.py [--model DIR_OR_HUB_ID] [--examples 32 --batch-size 8]
        [--precisions fp32,bf16] [--strategy single|ddp|fsdp --processes 2] [--gradient-checkpointing]

Examples are the arith task's prompts with their worked solutions as completions. Prints, per
precision, the optimizer steps, training tokens (prompt + completion, as the model sees them),
seconds of training (model loading excluded), tokens/s, and the first, last and mean loss, so the
bf16 loss can be read against fp32's. Default model: the embedded SmolLM2-135M.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    model = resolve(args.model)
    tok = load_tokenizer(model)
    rows = []
    for precision in args.precisions.split(","):
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
            result = sft(base_model(args.model, model, None), examples, Path(out) / "model", cfg.train)
            wall = time.perf_counter() - start
        rows.append((precision, result, tokens, result["seconds"] or wall, wall))
    print(
        f"\n{args.model} ({args.strategy}, {args.processes} process(es)), {args.examples} examples, "
        f"batch {args.batch_size}"
    )
    print(
        f"{'precision':<10}{'steps':>6}{'tokens':>8}{'train s':>9}{'tok/s':>7}{'first loss':>12}{'last loss':>11}"
        f"{'mean loss':>11}{'with loading s':>16}"
    )
    for precision, r, tokens, seconds, wall in rows:
        print(
            f"{precision:<10}{r['steps']:>6}{tokens:>8}{seconds:>9.1f}{tokens / seconds:>7.0f}{r['first_loss']:>12.4f}"
            f"{r['last_loss']:>11.4f}{r['train_loss']:>11.4f}{wall:>16.1f}"
        )


if __name__ == "__main__":
    main()
