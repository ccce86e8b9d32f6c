#!/usr/bin/env bash
# One-call GPU check for localattn (< 8 min on an H100/H200): the test suite on CUDA (gpu-marked
# tests and the Triton tests, compiled for real), then the CogView2-shape benchmark.
# Usage (repo root or anywhere): bash packages/localattn/bench/gpu_check.sh
# Env: PYTHON (default python3), OUT (log folder, default packages/localattn/bench/gpu-logs).
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-python3}
OUT=${OUT:-packages/localattn/bench/gpu-logs}
mkdir -p "$OUT"
"$PY" -c "import localattn" 2>/dev/null || "$PY" -m pip install -q --no-deps -e packages/localattn
"$PY" -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/env.txt"
"$PY" -m localattn.info | tee -a "$OUT/env.txt"
timeout 200 "$PY" -m pytest packages/localattn/tests -q -p no:cacheprovider -x --durations=5 \
  2>&1 | tail -40 | tee "$OUT/gpu_tests.log"
timeout 260 "$PY" packages/localattn/bench/gpu_bench.py --reps 10 2>&1 | tee "$OUT/gpu_bench.md"
