"""The effect of a camera mask on the score, measured on real footage.

    python scripts/mask_effect.py ucsd ../shared/data/ucsd_ped2 --mask 0,0,360,0,360,90,0,90
    python scripts/mask_effect.py video ../shared/data/video/vtest.avi \
        --mask 0,0,480,0,480,90,0,90 --baseline 200

Each source is scored twice through the live path (`ClipScorer` and the model's
reconstructor, as `clipwatch replay` and the service), without and with the mask.

- `ucsd`: the test clips with their frame-level ground truth and the model's own
  calibration: frame AUC (paper and causal), mean live regularity on normal and abnormal
  frames, the share of normal frames below the threshold (per-frame false alarms), and the
  alerts the service raises (default rules) against the abnormal intervals. The masked run
  is also read with e(t) scaled up by the area (all pixels / pixels counted), as a zone's
  is, to show why a masked e(t) is not (regions.py).
- `video`: a recording with no ground truth, taken as normal, as a camera learning its
  baseline from its first `--baseline` frames: every alert after that is a false alarm.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from clipwatch.cli import _polygon
from clipwatch.evaluate import alert_tally
from clipwatch.model.clip_scorer import ClipScorer
from clipwatch.model.reconstructors import load_model
from clipwatch.model.regions import region_weights
from clipwatch.model.score_source import score_frames
from clipwatch.model.scoring import causal_regularity
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.quality import alert_spans
from clipwatch.replay import ClipResult, replay, replay_targets
from clipwatch.stream.sources import open_source


def live_figures(clips: list[ClipResult], calibration, warmup: int) -> dict:
    normal = np.concatenate([c.live[~c.abnormal] for c in clips])
    abnormal = np.concatenate([c.live[c.abnormal] for c in clips])
    normal, abnormal = normal[~np.isnan(normal)], abnormal[~np.isnan(abnormal)]
    return {"mean_regularity_normal": float(normal.mean()),
            "mean_regularity_abnormal": float(abnormal.mean()),
            "normal_frames_below_threshold": float((normal < calibration.threshold).mean()),
            "alerts": alert_tally(clips, calibration, warmup)}


def area_scaled(clips: list[ClipResult], scale: float, calibration) -> list[ClipResult]:
    """The same clips as if the masked e(t) were scaled up by the area left out."""
    out = []
    for clip in clips:
        live = causal_regularity(clip.errors * scale, calibration)
        live[np.isnan(clip.live)] = np.nan  # the same frames without a verdict
        out.append(replace(clip, errors=clip.errors * scale, live=live))
    return out


def measure_ucsd(model, root: str, masks: tuple) -> dict:
    targets = replay_targets(root)
    calibration = model.sidecar.calibration
    warmup = model.sidecar.input_spec.clip_length - 1
    results = {}
    for name, run_masks in (("plain", ()), ("masked", masks)):
        report = replay(targets, model, masks=run_masks, show_progress=False)
        figures = {k: report.metrics[k] for k in ("auc_paper", "auc_causal")}
        figures |= live_figures(report.clips, calibration, warmup)
        results[name] = figures
        if run_masks:
            with open_source(targets[0].source) as source:
                height, width = next(iter(source)).image.shape[:2]
            weights = region_weights(run_masks, [], (width, height),
                                     model.sidecar.input_spec.size)
            clips = area_scaled(report.clips, weights.keep_scale, calibration)
            results["masked_fraction"] = weights.masked_fraction
            results["masked_area_scaled"] = live_figures(clips, calibration, warmup)
    return results


def measure_video(model, path: str, masks: tuple, baseline: int) -> dict:
    results = {}
    for name, run_masks in (("plain", ()), ("masked", masks)):
        settings = replace(model.settings(1, None, baseline_frames=baseline), masks=run_masks)
        scorer = ClipScorer(Path(path).name, settings)
        with open_source(path) as source:
            live = np.array([np.nan if s.regularity is None else s.regularity
                             for s in score_frames(source, scorer, model.reconstructor)])
        threshold = scorer.live.calibration.threshold
        judged = live[~np.isnan(live)]
        spans = alert_spans(live, threshold)
        results[name] = {"frames": len(live), "frames_judged": len(judged),
                         "threshold": threshold, "mean_regularity": float(judged.mean()),
                         "frames_below_threshold": float((judged < threshold).mean()),
                         "alerts": len(spans), "alert_frames": spans}
        if run_masks:
            results["masked_fraction"] = scorer.regions.masked_fraction
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["ucsd", "video"])
    parser.add_argument("source", help="a UCSD root (ucsd) or a recording (video)")
    parser.add_argument("--mask", action="append", type=_polygon, required=True,
                        metavar="X,Y,X,Y,...", help="a mask polygon in frame pixels; repeatable")
    parser.add_argument("--baseline", type=int, default=200,
                        help="video: frames the camera learns its baseline from")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    masks = tuple(args.mask)
    if args.kind == "ucsd":
        results = measure_ucsd(model, args.source, masks)
    else:
        results = measure_video(model, args.source, masks, args.baseline)
    results = {"source": args.source, "masks": [list(map(list, m)) for m in masks],
               "model": Path(args.model).name} | results
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
