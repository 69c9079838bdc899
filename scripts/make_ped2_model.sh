#!/usr/bin/env bash
# Reproduces weights/ucsd_ped2.onnx with the project's own trainer on a 2-core CPU:
# 5000 steps of 4 clips, Adam 1e-3 with a cosine decay to 1e-4, clips 15 and 16 held out;
# then export, evaluation of every scoring option, calibration of the shipped scoring on the
# two held-out normal clips, and the recorded metrics (weights/ucsd_ped2.eval.json).
# Needs the train extra (scripts/setup.sh train) and ../shared/data. Rerun to resume: the
# checkpoint is exact, so an interrupted run ends with the same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/ucsd_ped2}
run=${RUN:-runs/ped2}
scoring=${SCORING:-frame+smooth9}
model=weights/ucsd_ped2.onnx
cw=.venv/bin/clipwatch
$cw train "$data" --out "$run" --steps 5000 --lr 1e-3 --lr-schedule cosine --holdout 15 16 \
    --checkpoint-minutes 4 --resume
$cw export "$run/last.pt" --out "$model"
$cw calibrate "$model" "$data" --clips 15 16 --far 0.01 --scoring "$scoring"
.venv/bin/python scripts/record_metrics.py "$model" "$data"
