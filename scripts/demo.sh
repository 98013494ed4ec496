#!/usr/bin/env bash
# The quickstart: simulated LST-1 events -> γ-PhysNet and the Hillas+RF baseline,
# trained on the same events -> both applied to the same test files -> benchmark report.
#
#   make demo                      # full size (see docs/benchmark.md for timings)
#   make demo DEMO_EVENTS=300 DEMO_EPOCHS=1   # smoke version, a few minutes
#
# Steps whose output exists are skipped; delete a file (or `make clean-demo`) to redo it.
set -euo pipefail

BIN=${BIN:-.venv/bin}
DEMO_DIR=${DEMO_DIR:-demo}
DEMO_EVENTS=${DEMO_EVENTS:-10000}          # triggered gammas in the training set
DEMO_TEST_EVENTS=${DEMO_TEST_EVENTS:-$((DEMO_EVENTS / 2))}
DEMO_PROTON_EVENTS=${DEMO_PROTON_EVENTS:-$((DEMO_EVENTS / 2))}
DEMO_PROTON_TEST_EVENTS=${DEMO_PROTON_TEST_EVENTS:-$((DEMO_TEST_EVENTS / 2))}
DEMO_EPOCHS=${DEMO_EPOCHS:-20}
DEMO_PRESET=${DEMO_PRESET:-small}
DEMO_SEED=${DEMO_SEED:-0}
# torch.compile: 1.4x the images/s after 1.5 min of compilation on 2 cores (cached after the first
# run): it pays from about 100k training images (DEMO_EVENTS=10000 is 90k over 20 epochs)
DEMO_COMPILE=${DEMO_COMPILE:-0}
RESOURCES=ctapipe_gammalearn/resources

SIM=$DEMO_DIR/dl1
LOGS=$DEMO_DIR/provenance
MODELS=$DEMO_DIR/models
DL2=$DEMO_DIR/dl2
mkdir -p "$SIM" "$MODELS" "$DL2" "$LOGS"

log() { printf '\n=== %s: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# Independent steps run DEMO_JOBS at a time, each on one core: a step's fixed cost (5-8 s of
# imports per tool) then overlaps another's work, which is most of a small demo's time.
DEMO_JOBS=${DEMO_JOBS:-$(nproc)}
MAX_JOBS=$DEMO_JOBS
PIDS=()
# a failed step stops the demo: stop whatever still runs in the background with it
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
in_background() {  # run "$@" in the background, at most MAX_JOBS at once, one thread each
    while (( $(jobs -rp | wc -l) >= MAX_JOBS )); do sleep 0.2; done
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 "$@" &
    PIDS+=($!)
}
wait_all() {  # wait for every background step in PIDS; stop if one failed
    local failed=0 pid
    for pid in "${PIDS[@]}"; do wait "$pid" || failed=1; done
    PIDS=()
    if (( failed )); then echo "a step failed: see its log above and $LOGS/" >&2; exit 1; fi
}

# run CMD... writing OUTPUT through OUTPUT.partial, unless OUTPUT exists
# (the partial name keeps a killed run from passing for a finished one)
make_file() {
    local output=$1; shift
    if [[ -e $output ]]; then
        echo "exists, skipped: $output"
        return
    fi
    local partial="${output%.*}.partial.${output##*.}"
    rm -rf "$partial"
    "$@" "$partial"
    mv "$partial" "$output"
}

simulate_now() {  # name particle n seed extra-args...
    local name=$1 particle=$2 n=$3 seed=$4; shift 4
    log "simulate $name ($n $particle events)"
    make_file "$SIM/$name.dl1.h5" "$BIN/ctapipe-gammalearn-simulate" --particle "$particle" \
        --n-events "$n" --seed "$seed" --overwrite --provenance-log "$LOGS/simulate_$name.log" \
        --workers 1 --no-progress "$@" --output
}
simulate() { in_background simulate_now "$@"; }

# LST-1 at 20 deg zenith. Gammas from 10 GeV, diffuse within 2.5 deg for
# training, plus a point-like test set at the usual 0.4 deg wobble offset.
# Protons: diffuse within 8 deg, from 20 GeV (they need more energy for the same light).
# Training spectra are E^-2; test spectra E^-1.5, to fill the TeV bins (metrics
# are per true-energy bin, so the spectrum only sets the statistics).
GAMMA=(--energy-min 0.01 --energy-max 100 --core-max 500)
PROTON=(--energy-min 0.02 --energy-max 200 --core-max 700 --viewcone-max 8)
TRAIN=(--spectral-index -2)
TEST=(--spectral-index -1.5)
# The schedule, on 2 cores: (1) the training sets, DEMO_JOBS files at a time, one worker each
# (faster than one file on every core: 41 s against 53 s for two 2500-gamma files), protons
# first (they take twice as long), so that no core idles at the end; (2) γ-PhysNet trains
# on TRAIN_THREADS threads while the other cores simulate the test sets, train and apply
# the Hillas+RF baseline (two threads train only 1.5x faster than one: the overlap wastes
# less); (3) γ-PhysNet applied to the test files, and the reports.
# Training sets come in DEMO_TRAIN_PARTS files (own seed and obs_id each): γ-PhysNet
# validates on whole files, never on events of its training files. The baseline
# tools read one file, the parts merged.
DEMO_TRAIN_PARTS=${DEMO_TRAIN_PARTS:-4}
for part in $(seq 1 "$DEMO_TRAIN_PARTS"); do
    simulate proton_train_$part proton $((DEMO_PROTON_EVENTS / DEMO_TRAIN_PARTS)) $((DEMO_SEED + 100 + part)) \
        --obs-id $((100 + part)) "${PROTON[@]}" "${TRAIN[@]}"
done
for part in $(seq 1 "$DEMO_TRAIN_PARTS"); do
    simulate gamma_diffuse_train_$part gamma $((DEMO_EVENTS / DEMO_TRAIN_PARTS)) $((DEMO_SEED + 200 + part)) \
        --obs-id $((200 + part)) "${GAMMA[@]}" "${TRAIN[@]}" --viewcone-max 2.5
done
wait_all

TRAIN_GAMMA_PARTS=("$SIM"/gamma_diffuse_train_*.dl1.h5)
TRAIN_PROTON_PARTS=("$SIM"/proton_train_*.dl1.h5)
TRAIN_GAMMA=$SIM/gamma_diffuse_train.merged.dl1.h5
TRAIN_PROTON=$SIM/proton_train.merged.dl1.h5

TRAIN_THREADS=${TRAIN_THREADS:-$(( DEMO_JOBS > 3 ? DEMO_JOBS / 2 : 1 ))}
log "train γ-PhysNet ($DEMO_PRESET, $DEMO_EPOCHS epochs, CPU, $TRAIN_THREADS threads, compile=$DEMO_COMPILE), in the background"
TRAIN_PID=
if ! compgen -G "$MODELS/gammaphysnet/gammaphysnet_*.onnx" > /dev/null; then
    OMP_NUM_THREADS=$TRAIN_THREADS "$BIN/ctapipe-train-gammalearn" \
        "${TRAIN_GAMMA_PARTS[@]/#/--signal=}" "${TRAIN_PROTON_PARTS[@]/#/--background=}" \
        --output-dir "$MODELS/gammaphysnet" --preset "$DEMO_PRESET" --epochs "$DEMO_EPOCHS" \
        --seed "$DEMO_SEED" --overwrite --provenance-log "$LOGS/train_gammaphysnet.log" \
        "$( (( DEMO_COMPILE )) && echo --compile || echo --no-compile)" &
    TRAIN_PID=$!
    # the training counts as one running job: the other steps get the remaining cores
    MAX_JOBS=$(( DEMO_JOBS - TRAIN_THREADS + 1 ))
else
    echo "exists, skipped: $MODELS/gammaphysnet"
fi

# meanwhile: the test sets (the proton set first, the longest) and the merged training parts
simulate proton_test proton "$DEMO_PROTON_TEST_EVENTS" $((DEMO_SEED + 5)) --obs-id 5 "${PROTON[@]}" "${TEST[@]}"
simulate gamma_point_test gamma "$DEMO_TEST_EVENTS" $((DEMO_SEED + 3)) --obs-id 3 "${GAMMA[@]}" "${TEST[@]}" \
    --viewcone-max 0 --wobble 0.4
simulate gamma_diffuse_test gamma "$DEMO_TEST_EVENTS" $((DEMO_SEED + 4)) --obs-id 4 "${GAMMA[@]}" "${TEST[@]}" --viewcone-max 2.5
log "merge the training parts for the baseline tools"
in_background make_file "$TRAIN_GAMMA" "$BIN/ctapipe-merge" "${TRAIN_GAMMA_PARTS[@]}" --overwrite \
    --provenance-log "$LOGS/merge_gamma.log" --output
in_background make_file "$TRAIN_PROTON" "$BIN/ctapipe-merge" "${TRAIN_PROTON_PARTS[@]}" --overwrite \
    --provenance-log "$LOGS/merge_proton.log" --output
wait_all

# the Hillas+RF baseline on the same training files and quality cuts
log "train the Hillas+RF baseline"
in_background make_file "$MODELS/energy_regressor.pkl" "$BIN/ctapipe-train-energy-regressor" \
    -c "$RESOURCES/baseline_energy_regressor.yaml" --input "$TRAIN_GAMMA" --overwrite \
    --provenance-log "$LOGS/train_energy_regressor.log" --output
in_background make_file "$MODELS/disp_reconstructor.pkl" "$BIN/ctapipe-train-disp-reconstructor" \
    -c "$RESOURCES/baseline_disp_reconstructor.yaml" --input "$TRAIN_GAMMA" --overwrite \
    --provenance-log "$LOGS/train_disp_reconstructor.log" --output
in_background make_file "$MODELS/particle_classifier.pkl" "$BIN/ctapipe-train-particle-classifier" \
    -c "$RESOURCES/baseline_particle_classifier.yaml" --signal "$TRAIN_GAMMA" \
    --background "$TRAIN_PROTON" --overwrite --provenance-log "$LOGS/train_particle_classifier.log" --output
wait_all

# both methods on the same test files: one DL2 file holds both, the baseline's columns first
TEST_SETS=(gamma_point_test gamma_diffuse_test proton_test)
apply_baseline() {  # name
    local name=$1
    [[ -e $DL2/$name.dl2.h5 ]] && return
    make_file "$DL2/$name.baseline.dl2.h5" "$BIN/ctapipe-apply-models" \
        -c "$RESOURCES/baseline_apply.yaml" --input "$SIM/$name.dl1.h5" \
        --reconstructor "$MODELS/energy_regressor.pkl" \
        --reconstructor "$MODELS/disp_reconstructor.pkl" \
        --reconstructor "$MODELS/particle_classifier.pkl" --overwrite \
        --provenance-log "$LOGS/apply_models_$name.log" --output
}
apply_gammalearn() {  # name
    local name=$1
    make_file "$DL2/$name.dl2.h5" "$BIN/ctapipe-apply-gammalearn" \
        --input "$DL2/$name.baseline.dl2.h5" --model "$ONNX" --overwrite --no-progress \
        --provenance-log "$LOGS/apply_gammalearn_$name.log" --output
    rm -f "$DL2/$name.baseline.dl2.h5"
}
for name in "${TEST_SETS[@]}"; do
    log "apply the Hillas+RF baseline to $name"
    in_background apply_baseline "$name"
done
wait_all

if [[ -n $TRAIN_PID ]]; then
    log "wait for γ-PhysNet's training"
    wait "$TRAIN_PID" || { echo "the training failed: see its log above and $LOGS/" >&2; exit 1; }
fi
MAX_JOBS=$DEMO_JOBS
ONNX=$(compgen -G "$MODELS/gammaphysnet/gammaphysnet_*.onnx" | head -n 1)
for name in "${TEST_SETS[@]}"; do
    log "apply γ-PhysNet to $name"
    in_background apply_gammalearn "$name"
done
wait_all

for source in point diffuse; do
    log "benchmark report, $source gammas"
    in_background "$BIN/ctapipe-gammalearn-benchmark" --input "$DL2/gamma_${source}_test.dl2.h5" \
        --input "$DL2/proton_test.dl2.h5" --output-dir "$DEMO_DIR/report_$source" --overwrite \
        --provenance-log "$LOGS/benchmark_$source.log" \
        > "$DEMO_DIR/report_$source.txt"
done
wait_all
cat "$DEMO_DIR/report_point.txt" "$DEMO_DIR/report_diffuse.txt"
# the point-like set with the protons: a 1 h Crab observation, every method and kind of cuts
log "detection summary: 1 h of the Crab (report_point/metrics.json, key observation)"
"$BIN/python" - "$DEMO_DIR/report_point/metrics.json" <<'PYEOF'
import json, sys
rows = json.load(open(sys.argv[1])).get("observation")
if not rows:
    print("no observation in the report (see the benchmark's log line 'no observation: ...')")
for r in rows or []:
    print(f"{r['method']:>14} {r['cuts']:>10}: excess {r['excess']:9.1f}, significance {r['significance']:6.2f} sigma, "
          f"gamma rate {r['gamma_rate_per_min']:7.3g}/min, background {r['background_rate_per_min']:7.3g}/min")
PYEOF
log "done: $DEMO_DIR/report_point/ and $DEMO_DIR/report_diffuse/ (see docs/benchmark.md)"
