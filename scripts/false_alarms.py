"""False alarms of models on footage taken as normal (a camera's own, after what it learned).

    python scripts/false_alarms.py ../shared/data/video/vtest.avi --from-frame 477 \
        weights/ucsd_ped2.onnx runs/vtest/street.onnx

Each model scores the whole source as a live camera would (its variant, scoring and
calibration), and is judged on the frames from `--from-frame` on: the share of frames below
its threshold and the alerts the service's rules raise, per minute of footage. The frames
before only give the score its context, as a camera that kept running would have.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from clipwatch.learn import false_alarms
from clipwatch.model.reconstructors import load_model
from clipwatch.replay import replay, replay_targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--from-frame", type=int, default=0,
                        help="judge from this frame on (0-based)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results = {}
    for path in args.models:
        model = load_model(path)
        report = replay(replay_targets(args.source), model, show_progress=False)
        (clip,) = report.clips
        fps = 1 / np.median(np.diff(clip.timestamps))
        live = clip.live.copy()
        live[:args.from_frame] = np.nan
        judged = false_alarms(model.detector.path.name, [(live, clip.errors)],
                              model.sidecar.calibration.threshold, fps)
        per_minute = judged.alerts / (judged.seconds / 60)
        results[path] = {**judged.to_dict(), "alerts_per_minute": per_minute}
        print(f"{path}: {judged.frames} frames judged ({judged.seconds / 60:.2f} min), "
              f"{judged.false_alarm_rate:.2%} below its threshold {judged.threshold:.3f}, "
              f"{judged.alerts} alerts ({per_minute:.2f} per minute), mean e(t) "
              f"{judged.mean_error:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
