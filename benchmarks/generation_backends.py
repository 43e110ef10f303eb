"""Generation throughput on the same prompts: bare HF `generate`, tpt's hf backend, bare vLLM
`LLM.generate` and tpt's vllm backend, each at fp32 and bf16, side by side in one run.

    python benchmarks/generation_backends.py [--gsm8k ../shared/data/gsm8k] [--questions 32 --n 4
        --max-new-tokens 256] [--rows hf,vllm]

Prompts: GSM8K test questions in tpt's chat prompt (the arith task's bundled questions without
--gsm8k data). Sampling T=0.7, all prompts in flight (HF: batch 64 sequences). tokens/s counts the
tokens each one keeps: up to EOS for the bare engines; up to the end of the answer for tpt's
backends (hf stops there; vllm runs on and tpt cuts, and the tokens past the cut are printed).
Bare vLLM runs with the engine settings tpt picks (a fair measure of tpt's own overhead); one more
row shows vLLM's CPU defaults. Engine start-up is excluded everywhere (tpt's vllm engine is started
by a warm-up call first), and model loading for HF.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path

import torch


def prompts(model: str, questions: int, gsm8k=None):
    """The eval prompts of GSM8K (from the folder `gsm8k`) or, without it, of the arith task:
    (model path, tokenizer, chat texts, token ids, question ids)."""
    from tpt.compose import compose
    from tpt.models import load_tokenizer, resolve
    from tpt.prompt import PromptBuilder, encode, render
    from tpt.tasks import load_task

    task = ["task=gsm8k", f"task.path={gsm8k}"] if gsm8k else ["task=arith"]
    cfg = compose(task + [f"task.eval_questions={questions}"])
    data = load_task(cfg.task)
    path = resolve(model)
    tok = load_tokenizer(path)
    texts = render(tok, [PromptBuilder(cfg.task, data.few_shot, True)(p.question) for p in data.eval])
    return path, tok, texts, encode(tok, texts), [p.id for p in data.eval]


def bare_hf(path, tok, texts, n, max_new, dtype, batch=64):
    from tpt.models import load_causal_lm

    model = load_causal_lm(path, dtype)
    tok.padding_side = "left"
    per_call, tokens, seconds = max(1, batch // n), 0, 0.0
    eos = tok.eos_token_id
    for b in range(0, len(texts), per_call):
        enc = tok(texts[b : b + per_call], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(b)
        start = time.perf_counter()
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=0.7,
            top_p=1.0,
            top_k=None,
            max_new_tokens=max_new,
            num_return_sequences=n,
            pad_token_id=tok.pad_token_id,
        )
        seconds += time.perf_counter() - start
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            tokens += row.index(eos) + 1 if eos in row else len(row)
    return tokens, seconds, None


def tpt_backend(name, path, ids, keys, n, max_new, dtype, batch=64):
    from tpt.backends import Sampling, make_generator
    from tpt.compose import compose

    cfg = compose([f"backend={name}", f"model.dtype={dtype}"])
    gen = make_generator(cfg, path, None, batch)
    sampling = Sampling(n=n, temperature=0.7, top_p=1.0, max_new_tokens=max_new, seed=0)
    if name == "vllm":
        gen.generate(ids[:1], sampling, keys[:1])  # start the engine: start-up is not generation
    start = time.perf_counter()
    out = gen.generate(ids, sampling, keys)
    seconds = getattr(gen, "last_generate_seconds", None) or time.perf_counter() - start
    past = getattr(gen, "last_tokens_past_cut", None)
    gen.close()
    if name == "vllm":
        from tpt.backends.vllm import release

        release()
    return sum(c.n_tokens for cs in out for c in cs), seconds, past


def _bare_vllm_child(path, ids, n, max_new, dtype, tpt_settings, queue):
    if tpt_settings:
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM, SamplingParams

    from tpt.backends.vllm import engine_kwargs
    from tpt.models import model_max_length

    cpu = not torch.cuda.is_available()
    if tpt_settings:
        kwargs = engine_kwargs(
            path,
            dtype=dtype,
            revision=None,
            tensor_parallel_size=1,
            seed=0,
            cpu=cpu,
            gpu_memory_utilization=0.9,
            kv_cache_gb=None,
            max_model_len=None,
            enforce_eager=None,
            model_max_len=model_max_length(path),
        )
    else:  # vLLM's defaults, with a KV cache size that starts on a CPU
        kwargs = {
            "model": path,
            "dtype": dtype,
            "seed": 0,
            "enforce_eager": True,
            **({"kv_cache_memory_bytes": 2 << 30} if cpu else {}),
        }
    llm = LLM(**kwargs)
    start = time.perf_counter()
    out = llm.generate(
        [{"prompt_token_ids": x} for x in ids], SamplingParams(n=n, temperature=0.7, max_tokens=max_new), use_tqdm=False
    )
    seconds = time.perf_counter() - start
    llm.llm_engine.engine_core.shutdown()
    queue.put((sum(len(c.token_ids) for o in out for c in o.outputs), seconds, None))


def bare_vllm(path, ids, n, max_new, dtype, tpt_settings=True):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_bare_vllm_child, args=(path, ids, n, max_new, dtype, tpt_settings, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--gsm8k", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k")
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--rows", default="hf,vllm")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    args = ap.parse_args()
    if args.gsm8k and not (args.gsm8k / "test.jsonl").is_file():
        args.gsm8k = None
    path, tok, texts, ids, keys = prompts(args.model, args.questions, args.gsm8k)
    print(
        f"{args.model}: {len(ids)} prompts x {args.n} samples, up to {args.max_new_tokens} new tokens, "
        f"T=0.7, {torch.get_num_threads()} threads"
    )
    rows = []  # (label, engine, baseline of that engine?, dtype, tokens, seconds, tokens past the cut)
    n, new = args.n, args.max_new_tokens
    for dtype in args.dtypes.split(","):
        if "hf" in args.rows:
            rows.append(("bare HF generate", "hf", True, dtype, *bare_hf(path, tok, texts, n, new, dtype)))
            rows.append(("tpt backend=hf", "hf", False, dtype, *tpt_backend("hf", path, ids, keys, n, new, dtype)))
        if "vllm" in args.rows:
            rows.append(
                ("bare vLLM (tpt's engine settings)", "vllm", True, dtype, *bare_vllm(path, ids, n, new, dtype))
            )
            rows.append(
                ("tpt backend=vllm", "vllm", False, dtype, *tpt_backend("vllm", path, ids, keys, n, new, dtype))
            )
    if "vllm" in args.rows:
        rows.append(
            (
                "bare vLLM (its CPU defaults)",
                "vllm",
                False,
                "bfloat16",
                *bare_vllm(path, ids, n, new, "bfloat16", tpt_settings=False),
            )
        )
    baseline = {(engine, dtype): tokens / seconds for _, engine, is_bare, dtype, tokens, seconds, _ in rows if is_bare}
    # tok/s counts what each keeps (bare engines: up to EOS, past the answer too); seq/s compares the
    # same work, the n samples of every prompt.
    sequences = len(ids) * n
    print(
        f"\n{'engine':<36}{'dtype':<10}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'vs bare':>9}{'seq/s':>7}"
        f"{'vs bare':>9}{'past cut':>10}"
    )
    for label, engine, is_bare, dtype, tokens, seconds, past in rows:
        rate = tokens / seconds
        base = baseline[(engine, dtype)] if (engine, dtype) in baseline else None
        bare_seconds = next((r[5] for r in rows if r[2] and r[1] == engine and r[3] == dtype), None)
        ratio = "" if is_bare or base is None else f"{rate / base:.2f}x"
        seq_ratio = "" if is_bare or bare_seconds is None else f"{bare_seconds / seconds:.2f}x"
        print(
            f"{label:<36}{dtype:<10}{tokens:>8}{seconds:>9.1f}{rate:>8.0f}{ratio:>9}{sequences / seconds:>7.2f}"
            f"{seq_ratio:>9}{'' if past is None else past:>10}"
        )


if __name__ == "__main__":
    main()
