"""Peak memory of one training step, measured, beside the plan's estimate (tpt/plan.py,
`training_memory_gb`) for the same shape: 10 shapes each of Llama and Gemma-2, on this CPU.

    .venv/bin/python benchmarks/train_memory.py [--out benchmarks/results/train_memory.json]
    .venv/bin/python benchmarks/train_memory.py --device cuda --out benchmarks/results/train_memory_cuda.json

Each shape runs in a process of its own: a randomly initialised model (eager attention, as tpt
trains on a CPU and as Gemma-2 trains on a GPU without flash-attn), AdamW, two optimizer steps on
random tokens in fp32 with gradient checkpointing off. The figure is the resident-memory peak of the
second step (its states exist by then: the steady state) above the process's memory before the
model was built, read from /proc (VmHWM, reset with clear_refs before the step). What it checks is
the formula's terms (16 bytes a parameter of weights, gradients and AdamW states; activations per
layer; eager attention's score matrices; the logits), at fp32's 4 bytes an activation, where a GPU
under bf16 autocast holds 2. What it cannot check: the CUDA allocator's fragmentation and NCCL
buffers (the plan's fixed `overhead_gb`, left out here), autocast's bf16 weight copies (there is no
autocast in fp32), FSDP's sharding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (arch, hidden, layers, heads, kv_heads, head_dim, intermediate, seq, vocab): each architecture's
# proportions (Gemma-2's head_dim 256-like wide heads, Llama's 64), scaled down, with the MLP width,
# the sequence and the vocabulary varied so that each activation term can be told apart. The last two
# of each architecture are held out of the fit.
MICRO = 2
SHAPES = {
    arch: [
        (arch, 256, 4, h1, kv1, d1, 1024, 512, 32768),
        (arch, 512, 6, h2, kv2, d2, 2048, 512, 32768),
        (arch, 768, 8, h3, kv2, d3, 3072, 512, 32768),
        (arch, 512, 6, h2, kv2, d2, 1024, 256, 32768),
        (arch, 512, 4, h2, kv2, d2, 4096, 384, 16384),
        (arch, 384, 6, h2, kv2, d2, 1536, 768, 49152),
        (arch, 256, 8, h1, kv1, d1, 512, 1024, 16384),
        (arch, 768, 3, h3, kv2, d3, 1536, 256, 65536),
        (arch, 640, 5, h2, kv2, d2, 2560, 640, 24576),  # held out
        (arch, 448, 7, h1, kv1, d1, 1344, 320, 40960),  # held out
    ]
    for arch, (h1, kv1, d1), (h2, kv2, d2), (h3, d3) in [
        ("llama", (4, 2, 64), (8, 4, 64), (12, 64)),
        ("gemma2", (2, 1, 128), (4, 2, 128), (4, 192)),
    ]
}
HELD_OUT = 2


def rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def measure_one(
    arch: str,
    hidden: int,
    layers: int,
    heads: int,
    kv: int,
    head_dim: int,
    mlp: int,
    seq: int,
    vocab: int,
    device: str = "cpu",
) -> dict:
    """cpu: fp32, the process's resident peak. cuda: bf16 autocast (fp32 weights, as tpt trains on a
    GPU), the CUDA allocator's peak; what it adds over the CPU's terms is autocast's bf16 share."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(2)
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        intermediate_size=mlp,
        max_position_embeddings=seq,
        tie_word_embeddings=True,
    )
    cuda = device == "cuda"
    base = torch.cuda.memory_allocated() if cuda else rss("VmRSS")
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, attn_implementation="eager"))
    else:
        model = Gemma2ForCausalLM(Gemma2Config(**common, attn_implementation="eager"))
    model.train()
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, vocab, (MICRO, seq), device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # AdamW's moments exist from here on
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        steady = torch.cuda.memory_allocated()
        step()
        peak = torch.cuda.max_memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        steady = rss("VmRSS")
        step()
        peak = rss("VmHWM")
    return {
        "device": device,
        "arch": arch,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "kv_heads": kv,
        "head_dim": head_dim,
        "intermediate": mlp,
        "vocab": vocab,
        "seq": seq,
        "micro": MICRO,
        "params": params,
        "between_steps_bytes": steady - base,
        "peak_bytes": peak - base,
    }


# What one token of one layer keeps for the backward pass, in bytes, as terms of the shape (fp32): the
# hidden size (norms, residuals, projections' inputs, the attention's width, which is the hidden size
# in these shapes and the presets but Gemma-2-9B's, so not a term of its own), the MLP's width
# (gate, up, the activation and their product), and eager attention's scores (heads x seq); and the
# logits (vocab a token, once per model).
FEATURES = {
    "hidden": lambda r: r["hidden"] * r["layers"],
    "intermediate": lambda r: r["intermediate"] * r["layers"],
    "heads x seq": lambda r: r["heads"] * r["seq"] * r["layers"],
    "vocab": lambda r: r["vocab"],
}


def fit(rows: list) -> dict:
    """Least squares, per architecture, of the step's peak above 16 bytes a parameter (weights,
    gradients, AdamW) on the features above x tokens, on the rows not held out; every row's residual
    against the fitted total (row["fit_residual"])."""
    import numpy as np

    fits = {}
    for arch in {r["arch"] for r in rows}:
        mine = [r for r in rows if r["arch"] == arch]
        tokens = lambda r: r["seq"] * r["micro"]  # noqa: E731
        x = np.array([[f(r) * tokens(r) for f in FEATURES.values()] for r in mine if not r["held_out"]])
        y = np.array([r["peak_bytes"] - 16 * r["params"] for r in mine if not r["held_out"]])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        fits[arch] = dict(zip(FEATURES, map(float, coef)))
        for r in mine:
            est = 16 * r["params"] + sum(c * f(r) * tokens(r) for c, f in zip(coef, FEATURES.values()))
            r["fit_residual"] = float(est / r["peak_bytes"] - 1)
    return fits


def plan_terms(row: dict) -> dict:
    """The plan's estimate of the row's peak (tpt/plan.py), by term, and its residual. On a GPU, also
    the share of the fp32 activation terms that bf16 autocast keeps (the plan's activation_scale):
    the peak less the single-GPU strategy's states (fp32 states and autocast's bf16 weights)."""
    from tpt.plan import cpu_training_memory_terms

    terms = cpu_training_memory_terms(row)
    if row.get("device") == "cuda":
        from types import SimpleNamespace

        from tpt.training.strategies import STRATEGIES

        states = STRATEGIES["single"].state_bytes(SimpleNamespace(params=row["params"]), None)
        row["activation_scale"] = (row["peak_bytes"] - states) / (terms["layers"] + terms["logits"])
    row["plan_bytes"] = sum(terms.values())
    row["plan_terms_bytes"] = terms
    row["plan_residual"] = row["plan_bytes"] / row["peak_bytes"] - 1
    return row


def report(rows: list, fits: dict) -> None:
    for row in rows:
        print(
            f"{row['arch']:7s} h {row['hidden']:4d} L {row['layers']} I {row['intermediate']:4d} s {row['seq']:4d} "
            f"V {row['vocab']:5d} {row['params'] / 1e6:5.1f}M  measured {row['peak_bytes'] / 2**20:7.1f} MiB  "
            f"plan {100 * row['plan_residual']:+5.1f}%  fit {100 * row['fit_residual']:+5.1f}%"
            + ("  (held out)" if row["held_out"] else "")
            + (f"  activation_scale {row['activation_scale']:.2f}" if "activation_scale" in row else "")
        )
    for arch, coef in fits.items():
        print(f"{arch}: bytes = 16 x params + tokens x (" + " + ".join(f"{v:.2f} x {k}" for k, v in coef.items()) + ")")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_memory.json")
    ap.add_argument("--one", nargs=10, help=argparse.SUPPRESS)
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: bf16 autocast on the GPU; its rows' activation_scale is the plan's --assume for GPUs",
    )
    ap.add_argument("--refit", action="store_true", help="fit the rows already in --out again, measuring nothing")
    args = ap.parse_args()
    if args.refit:
        data = json.loads(args.out.read_text())
        for row in data["rows"]:
            plan_terms(row)
        data["fits"] = fit(data["rows"])
        report(data["rows"], data["fits"])
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        return
    if args.one:
        arch, *nums, device = args.one
        print(json.dumps(measure_one(arch, *map(int, nums), device=device)))
        return
    rows = []
    for shapes in SHAPES.values():
        for i, shape in enumerate(shapes):
            out = subprocess.run(
                [sys.executable, __file__, "--one", *map(str, shape), args.device],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["held_out"] = i >= len(shapes) - HELD_OUT
            rows.append(plan_terms(row))
    fits = fit(rows)
    report(rows, fits)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": model_name, "fits": fits, "rows": rows}, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
