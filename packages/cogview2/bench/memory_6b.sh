#!/usr/bin/env bash
# Peak memory and time of every stage of the 6B configuration (random weights), one process per
# stage, next to cogview2.memory's prediction; then, on CUDA, one image under each memory plan.
#
#   bash packages/cogview2/bench/memory_6b.sh cpu  [OUT_DIR]   # bf16, batch 1 (~16 GB of RAM)
#   bash packages/cogview2/bench/memory_6b.sh cuda [OUT_DIR]   # bf16 and int8, batch 1 and 4,
#                                                             # + bench/memory_plans.py (~8 min)
# Each line of OUT_DIR/probe.jsonl is one `python packages/cogview2/bench/memory_probe.py` row. On CPU the
# probe measures resident memory (`--measure rss`): in bf16 the prediction includes oneDNN's
# kernel cache, which is not tensor memory; on CUDA, max_memory_allocated.
set -euo pipefail
device=${1:-cpu}
out=${2:-out/memory-6b}
mkdir -p "$out"
here=$(dirname "$0")
if [ "$device" = cpu ]; then
    for stage in coarse dsr itersr; do
        python "$here/memory_probe.py" --preset 6b --stage "$stage" --dtype bfloat16 \
            --device cpu --measure rss --out "$out/probe.jsonl"
    done
else
    for n in 1 4; do
        for int8 in "" --int8; do
            for stage in coarse dsr itersr; do
                python "$here/memory_probe.py" --preset 6b --stage "$stage" --dtype bfloat16 \
                    --device "$device" -n "$n" $int8 --out "$out/probe.jsonl"
            done
        done
    done
    python "$here/memory_plans.py" --device "$device" --out "$out/plans.jsonl"
fi
