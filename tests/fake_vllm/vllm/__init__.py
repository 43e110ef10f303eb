"""A stand-in for the `vllm` package, kept for the one thing vLLM's CPU build cannot run: tensor
parallelism over several GPUs. It has the surface tpt's engine process uses (`LLM(**kwargs)`,
`LLM.generate`, `LLM.get_tokenizer`, `LLM.llm_engine.engine_core.shutdown`, `SamplingParams`),
records what it was asked (to $TPT_FAKE_VLLM_LOG, one JSON line per call, from whichever process
ran it) and answers with deterministic completions shaped like vLLM's RequestOutput.
"""
import json
import os
from types import SimpleNamespace


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _Tokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return "x" * len(ids)


class LLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.llm_engine = SimpleNamespace(engine_core=SimpleNamespace(shutdown=lambda: None))

    def get_tokenizer(self):
        return _Tokenizer()

    def generate(self, prompts, params):
        requests = [{"prompt_token_ids": p["prompt_token_ids"], "params": sp.kwargs} for p, sp in zip(prompts, params)]
        with open(os.environ["TPT_FAKE_VLLM_LOG"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "engine": self.kwargs, "requests": requests}) + "\n")
        return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"],
                                outputs=[SimpleNamespace(text=f"sample {j}\n#### {j}\n", token_ids=list(range(5 + j)))
                                         for j in range(sp.kwargs["n"])])
                for p, sp in zip(prompts, params)]
