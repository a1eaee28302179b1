#!/usr/bin/env bash
# The GPU check of the pre-training step, in one go on one machine: build vatt's extension for this torch and
# CUDA, measure the plain-PyTorch anchor (../shared/bench/anchor_gpu.py, torch.compile + reshape/matmul patch
# embedding, batch 32: the best plain figure) and then vatt's LBS step, optimised and plain, at the same batch.
# JSON goes to $OUT (default: a temporary folder). Usage: benchmarks/gpu_pretrain.sh [batch] [extra overrides...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$(mktemp -d)}"
BATCH="${1:-32}"
shift || true
ANCHOR="${ANCHOR:-$ROOT/../shared/bench/anchor_gpu.py}"
cd "$ROOT"

python -m pip install --quiet --no-build-isolation -e . 2>&1 | tail -n 3
python -m vatt.ops --json > "$OUT/ops.json"
if [[ -f "$ANCHOR" ]]; then
  OUT="$OUT" COMPILE=1 PATCH=matmul ONLY="$BATCH" python "$ANCHOR" | tee "$OUT/anchor.txt"
else
  echo "warning: no anchor at $ANCHOR (set ANCHOR=path/to/anchor_gpu.py): only vatt's own ratio is measured" >&2
fi
python benchmarks/pretrain.py configs/pretrain_lbs.yaml --batch "$BATCH" --plain --steps 10 --rounds 3 \
  --out "$OUT/pretrain_lbs.json" run.precision=bf16 run.compile=true "$@"
echo "results in $OUT"
