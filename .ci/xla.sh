#!/usr/bin/env bash
# XLA lane: every vatt op, forward and backward, on an XLA device (torch_xla's CPU PJRT client) checked against
# the CPU, with no fallback to the CPU for vatt:: or aten:: ops; and `python -m vatt.run` of the quickstart shrunk to
# two steps with run.device=xla (tests/xla/test_xla_run.py).
#
# Uses its own venv (.venv-xla, or $VATT_XLA_VENV) with torch 2.9.0 + torch_xla 2.9.0 (about 6.6 GB, a few
# minutes the first time; reused afterwards). vatt is imported from the source tree: the compiled vatt._C
# belongs to the main venv's torch, so VATT_OPS=prebuilt makes vatt.ops refuse it and serve the CPU with the
# pure-PyTorch composites (the XLA device always uses them). Extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VATT_XLA_VENV:-$ROOT/.venv-xla}"
PYTHON="${PYTHON:-python3}"

if ! "$VENV/bin/python" -c "import torch_xla, pytest, hypothesis, av, simplejpeg, yaml, tensorboard" 2>/dev/null; then
  echo "xla lane: creating $VENV with torch 2.9.0 and torch_xla 2.9.0"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "torch==2.9.0" "torch_xla==2.9.0" numpy pyyaml tensorboard av simplejpeg pytest hypothesis
fi

cd "$ROOT"
PJRT_DEVICE=CPU VATT_OPS=prebuilt PYTHONPATH="$ROOT" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/xla "$@"
