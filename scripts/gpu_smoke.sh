#!/usr/bin/env bash
# Two full rounds with backend=vllm on a CUDA machine, with the 1-GPU presets' real engine and training
# settings (vLLM at gpu_memory_utilization 0.9, compiled, bf16; train.strategy=single, which trains in a
# spawned process that must leave the GPU free for round 1's eval engine), on a tiny randomly initialised
# model built from a config plus the tokenizer shipped in tests/data/tokenizer: no hub, no internet.
# Then the figures: generation tokens/s for hf and vllm on the same GPU, and training tokens/s.
# Not yet run on a GPU since the model was sized to the GPU and the cell's memory sampled (issue 44).
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

# The model is sized to the GPU: a trainer left holding its fp32 weights, gradients and AdamW states
# (16 bytes a parameter) would take over 12% of the GPU, more than vLLM's 0.9 leaves, so round 1's eval
# engine would refuse to start ("free memory ... less than desired GPU memory utilization"). A smaller
# model (hidden 256) never crossed that line, and the smoke could not catch the leak it was written for.
LAYERS=$("$PY" - <<'PYCHECK'
import math, sys, torch, vllm
assert torch.cuda.is_available(), "no CUDA GPU visible"
total = torch.cuda.get_device_properties(0).total_memory
print(f"torch {torch.__version__}, vllm {vllm.__version__}, GPU {torch.cuda.get_device_name(0)}, "
      f"{total / 2**30:.0f} GiB", file=sys.stderr)
hidden, vocab = 2048, 49152  # tests/tiny_model.py: 9 hidden^2 a layer, tied embeddings of the tokenizer's vocab
print(math.ceil((0.12 * total / 16 - vocab * hidden) / (9 * hidden**2)))
PYCHECK
)
rm -rf "$OUT"
mkdir -p "$OUT"
"$PY" -m tests.tiny_model "$OUT/model" --hidden 2048 --heads 32 --layers "$LAYERS"

# Two rounds of the loop: eval(M0), think, prune, train (bf16, a spawned process), eval(M1) with vLLM
# loading the saved model at the presets' gpu_memory_utilization, then round 2 on M1.
# The CUDA memory each process holds, twice a second, while the loop runs: the cell's own process
# (launch.py) must never hold a trainer's state (training runs in a spawned process that exits).
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 500 > "$OUT/gpu_apps.csv" &
SAMPLER=$!
"$PY" launch.py name=gpu_smoke hydra.run.dir="$OUT/run" model.id="$OUT/model" backend=vllm cache=off rounds=2 \
  pruning=none task.eval_questions=16 task.train_questions=32 think.n=4 eval.n=4 'eval.k=[1,4]' \
  think.max_new_tokens=64 eval.max_new_tokens=64 data.size=16 model.dtype=bfloat16 model.gpus=1 \
  model.train_strategy=single backend.gpu_memory_utilization=0.9 &
CELL=$!
wait "$CELL"
kill "$SAMPLER" 2>/dev/null || true
test -f "$OUT/run/round_2/train/model/model.safetensors"
test -f "$OUT/run/round_2/eval/metrics.json"
# A CUDA context (~0.5 GiB) is allowed; a trainer's state (12% of the GPU, above) is not.
# Inside a container nvidia-smi may list no processes (or host PIDs): then it says the check did not run.
awk -F', *' -v cell="$CELL" '$1 ~ /^[0-9]+$/ { rows++ } $1 == cell && $2 + 0 > max { max = $2 + 0 }
  END { if (!rows) { print "gpu_smoke: nvidia-smi listed no processes: the cell process was NOT checked"; exit 0 }
        printf "gpu_smoke: the cell process held at most %d MiB of GPU memory\n", max; exit (max > 1024) }' \
  "$OUT/gpu_apps.csv" || { echo "gpu_smoke: the cell process held a trainer's memory" >&2; exit 1; }
echo "gpu_smoke: two rounds with backend=vllm finished: $OUT/run/summary.md"

# The figures (same GPU, same prompts and sampling).
"$PY" benchmarks/generation_backends.py --model "$OUT/model" --rows hf,vllm --questions 256 --n 8 \
  --max-new-tokens 128
"$PY" benchmarks/train_throughput.py --model "$OUT/model" --examples 512 --batch-size 16
