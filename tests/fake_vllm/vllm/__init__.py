"""A stand-in for the `vllm` package at the narrowest boundary tpt uses: `LLM(**kwargs)`,
`LLM.generate(prompts, params)` and `SamplingParams(**kwargs)`. It records what it was asked
(to $TPT_FAKE_VLLM_LOG, one JSON line per call, from whichever process ran it) and answers with
deterministic completions shaped like vLLM's RequestOutput / CompletionOutput.

$TPT_FAKE_VLLM_SHORT=1 makes it return one sample too few, as a broken engine would.
"""
import json
import os
from types import SimpleNamespace


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class LLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def generate(self, prompts, params):
        requests = [{"prompt_token_ids": p["prompt_token_ids"], "params": sp.kwargs} for p, sp in zip(prompts, params)]
        with open(os.environ["TPT_FAKE_VLLM_LOG"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "engine": self.kwargs, "requests": requests}) + "\n")
        short = os.environ.get("TPT_FAKE_VLLM_SHORT") == "1"
        outputs = []
        for p, sp in zip(prompts, params):
            n = sp.kwargs["n"] - (1 if short else 0)
            samples = [SimpleNamespace(text=f"seed {sp.kwargs['seed']} sample {j}\n#### {j}\nrambling on",
                                       token_ids=list(range(5 + j)), finish_reason="length") for j in range(n)]
            outputs.append(SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=samples))
        return outputs
