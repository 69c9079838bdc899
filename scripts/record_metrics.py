"""Evaluate a model on a UCSD root and record the figures in its sidecar and beside it.

    python scripts/record_metrics.py weights/ucsd_ped2.onnx ../shared/data/ucsd_ped2

Writes the model's scoring's AUC/EER into the sidecar's metrics and the whole evaluation
(every scoring option) to `<model>.eval.json`.
"""

import argparse
import json
import sys
from pathlib import Path

from clipwatch.errors import ClipwatchError
from clipwatch.evaluate import evaluate
from clipwatch.model.detector import Detector
from clipwatch.model.sidecar import write_sidecar


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("ucsd_root")
    args = parser.parse_args()
    try:
        detector = Detector(args.model)
        report = evaluate(detector, args.ucsd_root)
    except ClipwatchError as exc:
        print(f"record_metrics: error: {exc}", file=sys.stderr)
        return 1
    result = report.to_json()
    model = Path(args.model)
    model.with_suffix(".eval.json").write_text(json.dumps(result, indent=2) + "\n")
    detector.sidecar.metrics.update({
        "evaluated_on": f"{Path(args.ucsd_root).name}: test clips "
                        f"{', '.join(c['name'] for c in result['per_clip'])}",
        "scoring": result["scoring"]["name"], "frames": result["frames"],
        **{k: round(result[k], 4) for k in ("auc_paper", "eer", "auc_causal", "eer_causal")
           if result[k] is not None},
    })
    write_sidecar(model, detector.sidecar)
    print(json.dumps({k: result[k] for k in ("auc_paper", "eer", "auc_causal", "eer_causal",
                                             "frames", "clips")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
