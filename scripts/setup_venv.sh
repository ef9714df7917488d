#!/usr/bin/env bash
# Creates .venv with everything the toolkit needs. Reuses an installed torch (GPU images ship one);
# otherwise installs the pinned CPU build, never an unpinned (multi-GB CUDA) one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    echo "setup: reusing the installed torch ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
    "$PYTHON" -m venv --system-site-packages .venv
  else
    "$PYTHON" -m venv .venv
  fi
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing $TORCH_PIN"
  $PIP install -q "$TORCH_PIN"
fi
$PIP install -q -e ".[test,gpu]"
.venv/bin/python -c "import importlib.metadata as m, torch; print('setup: ok, torch', torch.__version__, 'libcst', m.version('libcst'))"
