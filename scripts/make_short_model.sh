#!/usr/bin/env bash
# Reproduces the bundled weights/ucsd_ped2_short.onnx: a short honest CPU training run on the
# UCSD Ped2 training clips (15 and 16 held out for calibration), export, calibration, metrics.
# Needs the train extra (scripts/setup.sh train) and ../shared/data. About 35 min on 2 cores;
# rerun it to resume after an interruption (the checkpoint holds every random state).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/ucsd_ped2}
run=${RUN:-runs/short}
model=weights/ucsd_ped2_short.onnx
.venv/bin/clipwatch train "$data" --out "$run" --steps 700 --lr 1e-3 \
    --holdout 15 16 --checkpoint-minutes 4 --resume
.venv/bin/clipwatch export "$run/last.pt" --out "$model"
.venv/bin/clipwatch calibrate "$model" "$data" --clips 15 16 --far 0.01
.venv/bin/python scripts/record_metrics.py "$model" "$data"
