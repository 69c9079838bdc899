"""Replay a UCSD root with a model and record the frame-level metrics in the model's sidecar.

    python scripts/record_metrics.py weights/ucsd_ped2_short.onnx ../shared/data/ucsd_ped2
"""

import argparse
import sys
from pathlib import Path

from clipwatch.errors import ClipwatchError
from clipwatch.model.detector import Detector
from clipwatch.model.sidecar import read_sidecar, write_sidecar
from clipwatch.replay import replay, replay_targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("ucsd_root")
    parser.add_argument("--stride", type=int, default=1)
    args = parser.parse_args()
    try:
        detector = Detector(args.model)
        report = replay(replay_targets(args.ucsd_root), detector, stride=args.stride)
    except ClipwatchError as exc:
        print(f"record_metrics: error: {exc}", file=sys.stderr)
        return 1
    sidecar = read_sidecar(Path(args.model))
    m = report.metrics
    sidecar.metrics.update({
        "evaluated_on": f"{args.ucsd_root} test clips {', '.join(c.name for c in report.clips)}",
        "stride": args.stride,
        "frames": report.frames,
        **{k: round(v, 4) for k, v in m.items() if k.startswith(("auc", "eer"))},
    })
    write_sidecar(Path(args.model), sidecar)
    print({k: round(v, 4) for k, v in m.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
