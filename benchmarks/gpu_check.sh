#!/usr/bin/env bash
# The GPU check, in one command on one machine (the device tool's H200): build vatt's extension with its CUDA
# kernels from source, confirm they serve CUDA, run the CUDA op tests, then time the LBS pre-training step in bf16
# (run.compile on and off, and the plain model, at batch 32 and 64) beside ../shared/bench/anchor_gpu.py.
#
#   benchmarks/gpu_check.sh [--dry-run]
#
# --dry-run does the same steps on the CPU with the tiny quickstart model, skipping what needs CUDA, so that no
# device time is lost to a typo. Everything goes to $OUT (default: a new temporary folder), in at most four files:
# gpu_check.json (every stage: its command, exit code, seconds and results), gpu_check.log, profile.txt and
# anchor.jsonl. The JSON is rewritten after each stage, so a run stopped at its limit keeps what it measured.
# The stages run in order of importance; one that would not fit in what is left of $BUDGET_S (default 540 s, under
# the device tool's 10 minutes a command) is recorded as skipped.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
PY="${PYTHON:-python3}"
OUT="${OUT:-$(mktemp -d)}"
BUDGET_S="${BUDGET_S:-540}"
ANCHOR="${ANCHOR:-$ROOT/../shared/bench/anchor_gpu.py}"
WORK="$(mktemp -d)"  # each stage's own output; $OUT keeps only the merged files
START=$(date +%s)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if (( DRY )); then
  CONFIG=configs/quickstart.yaml DEVICE=cpu BATCHES="2 4" STEPS="--steps 1 --rounds 1 --candidates 2"
else
  CONFIG=configs/pretrain_lbs.yaml DEVICE=cuda BATCHES="32 64" STEPS="--steps 10 --rounds 2"
fi
export ROOT DRY PY WORK ANCHOR CONFIG DEVICE BATCHES STEPS

# Modules vatt imports that the GPU image lacks travel as wheels in .whl/ (see docs/benchmarks.md).
if ! "$PY" -c "import av, simplejpeg, google_crc32c" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
  else
    echo "gpu_check: av, simplejpeg or google-crc32c is missing and there is no .whl/ folder to install them from" >&2
    exit 2
  fi
fi

# stage NAME SECONDS_NEEDED COMMAND...: run it unless less than SECONDS_NEEDED is left, time it, record it.
stage() {
  local name="$1" needs="$2"; shift 2
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if (( left < needs )); then
    echo "== $name: skipped, ${left}s left of ${BUDGET_S}s and it needs about ${needs}s"
    printf '{"stage": "%s", "skipped": "needs about %ss, %ss left"}\n' "$name" "$needs" "$left" >> "$WORK/stages.jsonl"
    collect; return 0
  fi
  echo "== $name ($*)"
  local began=$(date +%s%N)
  timeout --kill-after=10 "$left" bash -c '"$@"' "$name" "$@"  # a process group: a stopped stage stops whole
  local rc=$?
  "$PY" -c 'import json, sys; print(json.dumps({"stage": sys.argv[1], "rc": int(sys.argv[2]),
    "seconds": round(int(sys.argv[3]) / 1e9, 1), "command": sys.argv[4:]}))' \
    "$name" "$rc" "$(( $(date +%s%N) - began ))" "$@" >> "$WORK/stages.jsonl"
  collect
  return $rc
}

collect() {
  "$PY" benchmarks/gpu_check_collect.py "$WORK" "$OUT" --dry-run "$DRY" "$@"
}

build() {
  # sm_90 is the H200's own target; without it nvcc would embed older code that uses none of Hopper's instructions
  rm -f vatt/_C*.so
  TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "$PY" setup.py -q build_ext --inplace > "$WORK/build.txt" 2>&1 || { tail -n 40 "$WORK/build.txt"; return 1; }
  tail -n 3 "$WORK/build.txt"
}

ops_report() {
  "$PY" -m vatt.ops --json > "$WORK/ops.json" || return 1
  # on the GPU every op must be served on CUDA by vatt's own CUDA kernel, not by a composite
  (( DRY )) || "$PY" -c 'import json, sys
served = {name: devices["cuda"] for name, devices in json.load(open(sys.argv[1]))["ops"].items()}
bad = {name: kernel for name, kernel in served.items() if not str(kernel).startswith("CUDA (")}
sys.exit(f"not served by the CUDA kernels: {bad}") if bad else print("CUDA kernels serve CUDA:", served)' "$WORK/ops.json"
}

cuda_tests() {
  "$PY" -m pytest -q -p no:cacheprovider tests/ops/test_ops_cuda.py --junitxml="$WORK/cuda_tests.xml"
}

anchor() {
  [[ -f "$ANCHOR" ]] || { echo "no anchor at $ANCHOR (set ANCHOR=path/to/anchor_gpu.py)"; return 1; }
  # torch.compile + the reshape/matmul patch embedding at batch 32: the anchor's best plain-PyTorch figure
  OUT="$WORK" COMPILE=1 PATCH=matmul ONLY="${1}" "$PY" "$ANCHOR"
}

pretrain() {
  local batch="$1" profile=""
  [[ "$batch" == "${BATCHES%% *}" ]] && profile=--profile  # the first batch's profile says what to change next
  # shellcheck disable=SC2086  # STEPS and profile are lists of words
  "$PY" benchmarks/pretrain.py "$CONFIG" run.precision=bf16 --device "$DEVICE" --batch "$batch" $STEPS \
    --variants compiled,plain,uncompiled $profile --out "$WORK/pretrain_b$batch.json" > /dev/null
}

export -f build ops_report cuda_tests anchor pretrain
FIRST="${BATCHES%% *}" SECOND="${BATCHES##* }"
stage build 60 build || { echo "gpu_check: the build failed; nothing else can run"; exit 1; }
stage ops 10 ops_report
stage cuda_tests 60 cuda_tests
stage anchor 90 anchor "$FIRST"
stage "pretrain_b$FIRST" 120 pretrain "$FIRST"  # the variants in order of importance, each saved as it ends
stage "pretrain_b$SECOND" 120 pretrain "$SECOND"
collect --summary
rm -rf "$WORK"
