#!/usr/bin/env bash
# Every GPU test and benchmark of the monorepo, <= 9 minutes on one H100/H200, one JSON + one
# Markdown table in OUT (default gpu-results/). `--dry-run`: the same steps on CPU with tiny
# shapes (CI runs it). Installs the packages (editable, no torch download) when they are missing.
#   bash bench/gpu_all.sh [--dry-run] [--out DIR] [--budget SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import localattn, coglm_core, cogview2, cluster_sampling, icetk" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps -e packages/icetk -e packages/localattn \
    -e packages/cluster-sampling -e packages/coglm-core -e packages/cogview2
fi
exec "$PY" bench/gpu_all.py "$@"
