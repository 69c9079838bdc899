#!/usr/bin/env bash
# Reproduces the shipped default weights/ucsd_ped2.onnx from scratch on a 2-core CPU, in two
# resumable stages (rerun the script after an interruption: each stage resumes exactly from
# its last checkpoint, and a finished stage trains nothing):
#   1. the Chong & Tay autoencoder: 5000 steps of 4 clips, Adam 1e-3 with a cosine decay to
#      1e-4, frame strides 1/2/3, clips 15 and 16 held out (about 70 min). This stage alone
#      is the reference model, weights/ucsd_ped2_chong_tay.onnx.
#   2. pseudo-anomaly fine-tuning from stage 1: $TUNE_STEPS steps of 4 clips at Adam 1e-4,
#      normal clips at stride 1, one clip per batch drawn with skipped frames (strides 2-5)
#      and trained towards its stride-1 clip (about 1 s a step). The length was chosen by the
#      validation measure (`clipwatch validate`) over snapshots every 250 steps; BOX_SHARE
#      > 0 makes that share of the pseudo-anomalies local (measured worse, not shipped).
# Then export, the fast parts (run by the staggered variant, which `auto` names), the
# calibration on the two held-out clips through that variant, and the recorded metrics.
# Needs the train extra (scripts/setup.sh train) and ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/ucsd_ped2}
masks=${MASKS:-../shared/data/ucsd_ped2_masks}
base=${BASE_RUN:-runs/ped2}
tune=${TUNE_RUN:-runs/ped2_pseudo}
TUNE_STEPS=${TUNE_STEPS:-1500}
BOX_SHARE=${BOX_SHARE:-0}
scoring=${SCORING:-frame+smooth9}
model=${MODEL:-weights/ucsd_ped2.onnx}
cw=.venv/bin/clipwatch
$cw train "$data" --out "$base" --steps 5000 --lr 1e-3 --lr-schedule cosine --holdout 15 16 \
    --checkpoint-minutes 4 --resume
$cw train "$data" --out "$tune" --init "$base/last.pt" --steps "$TUNE_STEPS" --lr 1e-4 \
    --holdout 15 16 --frame-strides 1 --pseudo-anomalies 1 --pseudo-strides 2 3 4 5 \
    --pseudo-box-share "$BOX_SHARE" --snapshot-every 250 --checkpoint-minutes 4 --resume
$cw export "$tune/last.pt" --out "$model"
.venv/bin/python scripts/make_fast_parts.py "$model" "$data" --auto staggered
$cw calibrate "$model" "$data" --clips 15 16 --far 0.01 --scoring "$scoring" --variant auto
.venv/bin/python scripts/record_metrics.py "$model" "$data" --masks "$masks"
