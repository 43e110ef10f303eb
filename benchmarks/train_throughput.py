"""Training throughput: tokens per second of the train stage (TRL SFT) on synthetic examples.

    python benchmarks/train_throughput.py [--model DIR_OR_HUB_ID] [--examples 64 --batch-size 8]
        [--strategy single|ddp|fsdp --processes 2] [--gradient-checkpointing]

Examples are the arith task's prompts with their worked solutions as completions. Prints the
examples, optimizer steps, training tokens (prompt + completion, as the model sees them), seconds
of training (model loading excluded) and tokens/s. Default model: the embedded SmolLM2-135M.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tpt.config import compose
from tpt.lineage import base_model
from tpt.models import load_tokenizer, resolve
from tpt.prompt import PromptBuilder
from tpt.tasks import load_task
from tpt.training import sft, to_conversations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--strategy", default="single")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    cfg = compose(["task=arith", f"train.batch_size={args.batch_size}", f"model.train_strategy={args.strategy}",
                   f"model.gpus={args.processes}", f"model.gradient_checkpointing={args.gradient_checkpointing}",
                   "train.lr=1e-5"])
    data = load_task(cfg.task)
    prompt = PromptBuilder(cfg.task, data.few_shot, system_role=True)
    records = [{"question": p.question, "completion": p.solution} for p in data.train[: args.examples]]
    examples = to_conversations(records, prompt)
    model = resolve(args.model)
    tok = load_tokenizer(model)
    texts = [tok.apply_chat_template(e["prompt"] + e["completion"], tokenize=False) for e in examples]
    tokens = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = sft(base_model(args.model, model, None), examples, Path(out) / "model", cfg.train)
        wall = time.perf_counter() - start
    seconds = result["seconds"] or wall
    print(f"{args.model} ({args.strategy}, {args.processes} process(es)): {len(examples)} examples, "
          f"{result['steps']} steps, {tokens} tokens, {seconds:.1f} s training -> {tokens / seconds:.0f} tok/s "
          f"({wall:.1f} s with loading and saving)")


if __name__ == "__main__":
    main()
