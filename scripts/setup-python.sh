#!/usr/bin/env bash
# Creates .venv for the engine. Reuses an installed PyTorch (a CUDA build on a GPU box) when the
# chosen Python has one; otherwise installs the CPU build. Choose the Python with RL2048_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${RL2048_PYTHON:-python3}
if "$python" -c "import torch" 2>/dev/null; then
  echo "setup: using the PyTorch of $python ($("$python" -c 'import torch; print(torch.__version__)'))"
  "$python" -m venv --system-site-packages .venv
else
  "$python" -m venv .venv
  echo "setup: installing PyTorch (CPU build; on a GPU box install a CUDA build first, then rerun)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
fi
.venv/bin/python -m pip install -q -e "engine[test]"
.venv/bin/python -c "import torch, transformers, peft; print(f'setup: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}')"
