"""A tiny randomly initialised Llama with the tokenizer shipped in tests/data/tokenizer (SmolLM2's,
Apache-2.0): a real model directory, built from a config, with no hub access.

    python -m tests.tiny_model OUT_DIR [--hidden 256 --heads 4 --layers 2]

The tests use hidden 32 (fast on CPU); scripts/gpu_smoke.sh uses hidden 2048 with 32 heads, whose
head size (64) every vLLM attention backend supports, and as many layers as make a trainer's state
12% of its GPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TOKENIZER = Path(__file__).parent / "data" / "tokenizer"


def build(
    out: Path,
    hidden: int = 32,
    heads: int = 4,
    layers: int = 2,
    seed: int = 0,
    arch: str = "llama",
    head_dim: int = 0,
    intermediate: int = 0,
) -> Path:
    """arch: llama, or gemma2 (Gemma-2's soft-capped attention and alternating sliding windows);
    head_dim 0: hidden // heads; intermediate 0: 2 x hidden."""
    import torch
    from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "gemma2": (Gemma2Config, Gemma2ForCausalLM)}[
        arch
    ]
    config = config_cls(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        head_dim=head_dim or hidden // heads,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    print(build(args.out, args.hidden, args.heads, args.layers))
