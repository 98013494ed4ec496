#!/usr/bin/env bash
# Three quickstart runs on the same simulated events, compared on one board
# (docs/dashboard.md): γ-PhysNet `small` after 5 and after 20 epochs, and `paper`,
# each against the Hillas+RF baseline trained on the same files.
#
#   bash benchmarks/board_quickstart.sh              # BOARD_DIR=board_runs, 4000 training gammas
#   BOARD_EVENTS=10000 PAPER_EPOCHS=10 bash benchmarks/board_quickstart.sh
#
# The first run simulates; the others link its DL1 folder, so scripts/demo.sh skips the
# simulation and the baseline's training, and trains only γ-PhysNet.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
BOARD_DIR=${BOARD_DIR:-board_runs}
BOARD_EVENTS=${BOARD_EVENTS:-4000}
PAPER_EPOCHS=${PAPER_EPOCHS:-5}
mkdir -p "$BOARD_DIR"

quickstart() {  # name preset epochs
    local dir=$BOARD_DIR/$1
    if [[ $1 != small_20 ]]; then
        mkdir -p "$dir/models"
        ln -sfn "$(realpath "$BOARD_DIR/small_20/dl1")" "$dir/dl1"
        for pkl in "$BOARD_DIR"/small_20/models/*.pkl; do ln -sf "$(realpath "$pkl")" "$dir/models/"; done
    fi
    BIN=$BIN DEMO_DIR=$dir DEMO_EVENTS=$BOARD_EVENTS DEMO_PRESET=$2 DEMO_EPOCHS=$3 bash scripts/demo.sh \
        > "$BOARD_DIR/$1.log" 2>&1
    echo "$(date -u +%H:%M:%S) $1 done"
}

quickstart small_20 small 20
quickstart small_5 small 5
quickstart paper paper "$PAPER_EPOCHS"

"$BIN/ctapipe-gammalearn-board" "$BOARD_DIR"/small_5 "$BOARD_DIR"/small_20 "$BOARD_DIR"/paper \
    --output "$BOARD_DIR/board.html" --png "$BOARD_DIR/board.png" --overwrite \
    --provenance-log "$BOARD_DIR/board.provenance.log"
echo "board: $BOARD_DIR/board.html"
