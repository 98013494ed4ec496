#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run (about 8 minutes on one H200 without
# the physics stage):
#
#   bash benchmarks/bench_gpu.sh                     # speed: training and inference images/s
#   PHYSICS=1 bash benchmarks/bench_gpu.sh           # + physics at scale (the quickstart chain
#                                                    #   at 100k gammas / 50k protons, `paper`)
#   bash benchmarks/bench_gpu.sh --device cpu --tiny # the same code on CPU, tiny (test suite)
#
# Extra arguments go to bench_gpu.py (see its --help). Figures: $OUT/bench_gpu.json when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PYTHON")
JSON=${OUT:-${TMPDIR:-/tmp}}/bench_gpu.json

echo "=== $(date -u +%H:%M:%S) machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
"$PYTHON" benchmarks/bench_gpu.py --json "$JSON" "$@"
echo "figures written to $JSON"

if [[ ${PHYSICS:-0} == 1 ]]; then
    # simulation on every core, `paper` trained on the GPU, Hillas+RF on the same events
    echo "=== $(date -u +%H:%M:%S) physics at scale"
    BIN=$BIN DEMO_DIR=${PHYSICS_DIR:-${OUT:-/tmp}/physics} DEMO_EVENTS=${PHYSICS_EVENTS:-100000} \
        DEMO_PRESET=paper DEMO_EPOCHS=${PHYSICS_EPOCHS:-15} bash scripts/demo.sh
    echo "=== $(date -u +%H:%M:%S) physics done"
fi
