#!/usr/bin/env bash
# `make model`: rebuild the shipped default tray detector (models/tray_detector*.onnx + card) from nothing.
#
# 1. sim frames for five packaging lines (edge-app sim generate): line-1..3 train, line-4 validation
#    (picks the best epoch), line-5 test (never seen, only evaluated);
# 2. split by line into LST files + split.json, checked for leakage;
# 3. train ssd_mobilenet0.25 from scratch for a fixed wall-time budget (keeps the best validation epoch);
# 4. evaluate the exported ONNX (FP32 and FP16) through the edge app's ORT backend, write the model card.
#
# Under 60 min on 2 CPU cores. Tunables (environment): BUILD (work folder), BUDGET_MIN (training minutes),
# SEEDS (sim seeds per training line), NICE, OUT (where the model is shipped), REUSE_DATA=1 (keep the
# frames and split of a previous run in BUILD: the sim is deterministic, same seeds give the same bytes).
set -euo pipefail
cd "$(dirname "$0")/.."

APP=.venv/bin/edge-app
PY=.venv/bin/python
BUILD=${BUILD:-data/model_build}
BUDGET_MIN=${BUDGET_MIN:-50}
SEEDS=${SEEDS:-"11 12 13 14"}
SAMPLE_EVERY=${SAMPLE_EVERY:-6}
NICE=${NICE:-5}
OUT=${OUT:-models}
EPOCHS=${EPOCHS:-200}
ITERS_PER_EPOCH=${ITERS_PER_EPOCH:-80}
START=$(date +%s)

if [ "${REUSE_DATA:-0}" = 1 ] && [ -f "$BUILD/split/split.json" ]; then
    echo "== reusing the sim frames and split in $BUILD (REUSE_DATA=1)"
else
rm -rf "$BUILD"
mkdir -p "$BUILD/sim"

JOBS=${JOBS:-2}
gen() {  # line seed bins
    nice -n "$NICE" $APP sim generate --line "$1" --seed "$2" --bins "$3" --out "$BUILD/sim/$1-s$2" \
        --width 640 --height 360 --sample-every "$SAMPLE_EVERY" --no-video
}
export -f gen
export APP BUILD NICE SAMPLE_EVERY
echo "== sim frames ($JOBS at a time)"
{
    for line in line-1 line-2 line-3; do
        for seed in $SEEDS; do echo "$line $seed 3"; done
    done
    echo "line-4 41 3"
    echo "line-5 51 3"
    echo "line-5 52 2"
} | xargs -P "$JOBS" -L 1 bash -c 'gen "$@"' _

echo "== split by line"
$APP dataset split "$BUILD"/sim/*/output.manifest --out "$BUILD/split" --group-regex '(line-\d+)' \
    --val line-4 --test line-5
fi
$APP dataset check-split "$BUILD/split/split.json"

echo "== train (budget ${BUDGET_MIN} min)"
nice -n "$NICE" $APP train --arch ssd_mobilenet0.25 --input-size 300 --classes tray \
    --train "$BUILD/split/train.lst" --validation "$BUILD/split/val.lst" --model-dir "$BUILD/model" \
    --epochs "$EPOCHS" --iters-per-epoch "$ITERS_PER_EPOCH" --batch-size 16 --optimizer adam --lr 3e-3 \
    --warmup-iters 60 --max-val-images 0 --ema-decay 0.998 --time-budget-min "$BUDGET_MIN" --seed 0 --progress false \
    --resume false

echo "== evaluate on the unseen line and ship"
nice -n "$NICE" $PY -m training.model_card --build "$BUILD/model" --split "$BUILD/split" --out "$OUT" \
    --make-command "BUDGET_MIN=$BUDGET_MIN SEEDS=\"$SEEDS\" make model"
echo "make model: done in $(( ($(date +%s) - START) / 60 )) min"
