#!/usr/bin/env bash
# Two full rounds with backend=vllm on a CUDA machine, with the 1-GPU presets' real engine and training
# settings (vLLM at gpu_memory_utilization 0.9, compiled, bf16; train.strategy=single, which trains in a
# spawned process that must leave the GPU free for round 1's eval engine), on a tiny randomly initialised
# model built from a config plus the tokenizer shipped in tests/data/tokenizer: no hub, no internet.
# Then the figures: generation tokens/s for hf and vllm on the same GPU, and training tokens/s.
#
#   bash scripts/gpu_smoke.sh            # needs: .venv with the gpu extra (vllm) and a CUDA torch
#   PY=/path/to/python bash scripts/gpu_smoke.sh
#
# Everything lands in outputs/gpu_smoke/ (set OUT=... to move it); the last lines are the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/gpu_smoke}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

"$PY" - <<'PYCHECK'
import torch, vllm
assert torch.cuda.is_available(), "no CUDA GPU visible"
print(f"torch {torch.__version__}, vllm {vllm.__version__}, GPU {torch.cuda.get_device_name(0)}")
PYCHECK

rm -rf "$OUT"
"$PY" -m tests.tiny_model "$OUT/model" --hidden 256 --heads 4 --layers 2

# Two rounds of the loop: eval(M0), think, prune, train (bf16, a spawned process), eval(M1) with vLLM
# loading the saved model at the presets' gpu_memory_utilization, then round 2 on M1.
"$PY" launch.py name=gpu_smoke hydra.run.dir="$OUT/run" model.id="$OUT/model" backend=vllm cache=off rounds=2 \
  pruning=none task.eval_questions=16 task.train_questions=32 think.n=4 eval.n=4 'eval.k=[1,4]' \
  think.max_new_tokens=64 eval.max_new_tokens=64 data.size=16 model.dtype=bfloat16 model.gpus=1 \
  model.train_strategy=single backend.gpu_memory_utilization=0.9
test -f "$OUT/run/round_2/train/model/model.safetensors"
test -f "$OUT/run/round_2/eval/metrics.json"
echo "gpu_smoke: two rounds with backend=vllm finished: $OUT/run/summary.md"

# The figures (same GPU, same prompts and sampling).
"$PY" benchmarks/generation_backends.py --model "$OUT/model" --rows hf,vllm --questions 256 --n 8 \
  --max-new-tokens 128
"$PY" benchmarks/train_throughput.py --model "$OUT/model" --examples 512 --batch-size 16
