"""Alert rules measured on the validation replays (held-out normal clips and their synthetic
anomalies, no test labels): for each combination of hysteresis, close_frames and
merge_seconds, the alerts the service would raise.

    .venv/bin/python scripts/alert_rules.py weights/ucsd_ped2.onnx ../shared/data/ucsd_ped2

The model's calibration sets the threshold; the replays are scored once and every rule set
reads the same scores. Prints one line per rule set, best first (most events detected, then
fewest false alerts, fewest alerts per event, least delay).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

from clipwatch.config import AlertConfig
from clipwatch.errors import ClipwatchError
from clipwatch.model.reconstructors import load_model
from clipwatch.validation import alert_counts, score_sequences

HYSTERESIS = (0.0, 0.02, 0.05, 0.1)
CLOSE_FRAMES = (5, 10, 20)
MERGE_SECONDS = (0.0, 1.0, 3.0, 5.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("normal_data")
    parser.add_argument("--clips", nargs="*", help="held-out normal clips (default: sidecar's)")
    parser.add_argument("--json", help="write every rule set's counts here")
    args = parser.parse_args()
    try:
        model = load_model(args.model)
        calibration = model.sidecar.calibration
        if calibration is None:
            raise ClipwatchError(f"{args.model} has no calibration: calibrate it first")
        clips = args.clips or [str(c) for c in model.sidecar.provenance.get("held_out_clips")
                               or []]
        scored = score_sequences(model, args.normal_data, clips)
    except ClipwatchError as exc:
        print(f"alert_rules: error: {exc}", file=sys.stderr)
        return 1
    rows = []
    for hysteresis, close, merge in itertools.product(HYSTERESIS, CLOSE_FRAMES, MERGE_SECONDS):
        rules = AlertConfig(hysteresis=hysteresis, close_frames=close, merge_seconds=merge)
        counts = alert_counts(scored, calibration, rules)
        rows.append({"hysteresis": hysteresis, "close_frames": close, "merge_seconds": merge,
                     **counts})
    rows.sort(key=lambda r: (-r["events_detected"], r["false_alerts"],
                             r["alerts_per_detected_event"] or 99, r["median_delay_frames"] or 99,
                             r["merge_seconds"], r["close_frames"], r["hysteresis"]))
    print(f"{'hyst':>5} {'close':>5} {'merge':>5} {'events':>7} {'alerts':>6} {'per ev':>6} "
          f"{'false':>5} {'delay':>5}")
    for r in rows:
        print(f"{r['hysteresis']:>5} {r['close_frames']:>5} {r['merge_seconds']:>5} "
              f"{r['events_detected']:>3}/{r['events']:<3} {r['alerts']:>6} "
              f"{r['alerts_per_detected_event'] or 0:>6.2f} {r['false_alerts']:>5} "
              f"{r['median_delay_frames'] or 0:>5}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
