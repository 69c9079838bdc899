"""Evaluate a model on a UCSD root and record the figures in its sidecar and beside it.

    python scripts/record_metrics.py weights/ucsd_ped2.onnx ../shared/data/ucsd_ped2 \
        --masks ../shared/data/ucsd_ped2_masks

Runs the model as `serve` would (`--variant auto`): the validation measure on its held-out
normal clips (synthetic anomalies, no test labels) and the evaluation on the labelled test
clips (with pixel masks where given). Writes the headline figures into the sidecar's
metrics and the whole evaluation to `<model>.eval.json`.
"""

import argparse
import json
import sys
from pathlib import Path

from clipwatch.errors import ClipwatchError
from clipwatch.evaluate import evaluate
from clipwatch.model.reconstructors import load_model
from clipwatch.model.sidecar import write_sidecar
from clipwatch.model.variants import VARIANTS
from clipwatch.validation import validate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("ucsd_root")
    parser.add_argument("--masks", help="folder of TestNNN_gt pixel-mask folders")
    parser.add_argument("--variant", default="auto", choices=VARIANTS)
    args = parser.parse_args()
    try:
        model = load_model(args.model, variant=args.variant)
        held_out = [str(c) for c in model.sidecar.provenance.get("held_out_clips") or []]
        validation = validate(model, args.ucsd_root, held_out) if held_out else None
        report = evaluate(model, args.ucsd_root, masks=args.masks)
    except ClipwatchError as exc:
        print(f"record_metrics: error: {exc}", file=sys.stderr)
        return 1
    result = report.to_json()
    result["variant"] = model.variant
    if validation is not None:
        result["validation"] = validation.to_dict()
    path = Path(args.model)
    path.with_suffix(".eval.json").write_text(json.dumps(result, indent=2) + "\n")
    headline = {k: round(result[k], 4) for k in ("auc_paper", "auc_paper_minmax", "eer",
                                                 "auc_causal", "eer_causal")
                if result.get(k) is not None}
    model.sidecar.metrics.update({
        "evaluated_on": f"{Path(args.ucsd_root).name}: test clips "
                        f"{', '.join(c['name'] for c in result['per_clip'])}",
        "variant": model.variant, "scoring": result["scoring"]["name"],
        "frames": result["frames"], **headline,
        "localization": result.get("localization"), "alerts": result.get("alerts"),
        "validation": {k: round(v, 4) for k, v in validation.to_dict().items()
                       if isinstance(v, float)} if validation else None,
    })
    write_sidecar(path, model.sidecar)
    print(json.dumps({k: result.get(k) for k in ("variant", "auc_paper", "auc_paper_minmax",
                                                 "auc_causal", "localization", "alerts",
                                                 "frames", "clips")}))
    if validation is not None:
        print(json.dumps({"validation": model.sidecar.metrics["validation"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
