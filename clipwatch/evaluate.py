"""Evaluation and calibration over recorded footage, for every scoring option from one pass.

Each clip is run once through the path the live service runs (`replay.score_target`); the
model's own scoring is read off that path as it is, and every clip's per-position errors
are kept under several measures, so each other scoring option is an offline reading of the
same inference.
With pixel masks, the same pass feeds the localization tally (model/../quality.py) the error
map of each frame that has a mask; maps are not kept. Alerts are the test clips' live
regularity (the model's calibration) replayed through the service's AlertTracker.
Frame-level AUC is computed under the paper protocol (per-video min/max, all frames pooled)
and under the causal score, whose e_lo/e_hi come from normal clips held out of training.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clipwatch.errors import DatasetError
from clipwatch.model.calibration import calibrate_errors
from clipwatch.model.clip_scorer import ClipErrors, FrameScore
from clipwatch.model.frame_series import frame_series
from clipwatch.model.metrics import frame_auc, has_both_classes
from clipwatch.model.reconstructors import LoadedModel
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration
from clipwatch.quality import AlertTally, Localization
from clipwatch.replay import ClipResult, ReplayTarget, labels_for, pooled_metrics, score_target
from clipwatch.stream.footage import normal_clip_paths
from clipwatch.stream.sources import open_source
from clipwatch.stream.ucsd import find_ucsd
from clipwatch.stream.ucsd_masks import find_mask_dirs, read_masks

PATCHES = (16, 32, 64)  # window sides compared (pixels of the 227x227 input)
SMOOTHING = (1, 5, 9)  # trailing-mean windows compared (frames)


@dataclass
class ScoredClip:
    """One clip scored through the live path, readable under other scoring options too."""

    target: ReplayTarget
    live: ClipResult  # what the service computes: the scorer's own scoring
    scoring: ScoringOptions  # the scoring `live` was computed with
    warmup: int  # frames at the start the live score gives no verdict
    clip_errors: list[ClipErrors]  # every clip at every position (offline readings)

    def result(self, options: ScoringOptions) -> ClipResult:
        """The clip's series under `options`: the live result for the scoring it was run
        with, an offline reading of the same inference for any other."""
        if options == self.scoring and not options.overlap:
            return self.live
        if not self.clip_errors:
            raise DatasetError(f"{options.name} needs every clip position, which this "
                               "variant does not reconstruct")
        indices, errors = frame_series(self.clip_errors, options, self.warmup)
        timestamps = dict(zip((self.live.frames - 1).tolist(), self.live.timestamps,
                              strict=True))
        return ClipResult(self.target.name, indices + 1,
                          np.array([timestamps.get(i, np.nan) for i in indices]), errors,
                          labels_for(self.target, indices))

    def normal_errors(self, options: ScoringOptions) -> np.ndarray:
        """The errors a calibration is made from: every frame the live score judges."""
        return self.result(options).errors[self.warmup:]


def score_clips(targets: list[ReplayTarget], model: LoadedModel, scoring: ScoringOptions,
                patches: tuple[int, ...] | None, what: str, calibration: Calibration | None = None,
                masks: dict[str, np.ndarray] | None = None,
                localization: Localization | None = None) -> list[ScoredClip]:
    """Run every target through the live path once (stride 1; the live score with
    `calibration`, none by default: other constants are applied afterwards, by the same
    formula). With `patches` (not None), every clip's errors at every position are kept too,
    for other scoring options. A target with `masks` (by name: (frames, S, S) bool) shows
    `localization` each frame's error map as it is scored."""
    settings = model.settings(1, calibration=calibration,
                              scoring=replace(scoring, overlap=False))
    scored = []
    with tqdm(unit="frame", desc=what, disable=None, leave=False) as bar:
        for target in targets:
            on_map = None
            if masks and target.name in masks and localization is not None:
                def on_map(score: FrameScore, clip_masks=masks[target.name]) -> None:
                    if score.index < len(clip_masks):
                        localization.add(score.error_map, clip_masks[score.index])
            result, scorer = score_target(target, model, settings, False, 8, bar,
                                          extra_patches=patches, on_map=on_map)
            scored.append(ScoredClip(target, result, settings.scoring,
                                     scorer.live.warmup_frames, scorer.clip_errors))
    return scored


def normal_targets(data: str | Path, names: list[str] | None) -> list[ReplayTarget]:
    """Normal clips by name from a UCSD root (its training clips) or a folder of clips."""
    paths = normal_clip_paths(data)
    if names:
        known = {n for n, _ in paths}
        missing = [n for n in names if n not in known]
        if missing:
            raise DatasetError(f"no normal clip named {', '.join(missing)} in {data} "
                               f"(have {', '.join(sorted(known))})")
        paths = [(n, p) for n, p in paths if n in names]
    return [ReplayTarget(n, p, None) for n, p in paths]


def calibrate_scored(normal: list[ScoredClip], options: ScoringOptions, far: float,
                     data: str) -> Calibration:
    """Calibration from normal clips: the frames the live score gives a verdict, as a
    camera learning its own baseline takes them."""
    errors = np.concatenate([c.normal_errors(options) for c in normal])
    return calibrate_errors(errors, far, data, options)


def scoring_variants(patches=PATCHES, smoothing=SMOOTHING) -> list[ScoringOptions]:
    return [ScoringOptions(patch=p, overlap=o, smooth=s)
            for p, o, s in itertools.product((0, *patches), (False, True), smoothing)]


@dataclass
class VariantResult:
    options: ScoringOptions
    metrics: dict[str, float]
    calibration: Calibration | None

    def to_dict(self) -> dict:
        return {"name": self.options.name, **{k: round(v, 4) for k, v in self.metrics.items()
                                              if k.startswith(("auc", "eer"))}}


@dataclass
class Evaluation:
    model: str
    dataset: str
    scoring: ScoringOptions
    clips: list[ClipResult]
    calibration: Calibration | None
    metrics: dict[str, float]
    variants: list[VariantResult] = field(default_factory=list)
    localization: dict | None = None
    alerts: dict | None = None

    def to_json(self) -> dict:
        m = self.metrics
        per_clip = []
        for clip in self.clips:
            entry = {"name": clip.name, "frames": len(clip.errors),
                     "abnormal": int(clip.abnormal.sum()) if clip.abnormal is not None else None}
            clip_metrics = pooled_metrics([clip], self.calibration)
            entry.update({k: round(v, 4) for k, v in clip_metrics.items() if k.startswith("auc")})
            per_clip.append(entry)
        return {
            "model": self.model, "dataset": self.dataset, "scoring": self.scoring.to_dict(),
            "auc_paper": m.get("auc_paper"), "auc_paper_minmax": paper_minmax_auc(self.clips),
            "auc_causal": m.get("auc_causal"),
            "eer": m.get("eer_paper"), "eer_causal": m.get("eer_causal"),
            "frames": sum(len(c.errors) for c in self.clips), "clips": len(self.clips),
            "frames_abnormal": int(m.get("frames_abnormal", 0)),
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "per_clip": per_clip,
            "variants": [v.to_dict() for v in self.variants],
            "localization": self.localization, "alerts": self.alerts,
        }


def paper_minmax_auc(clips: list[ClipResult]) -> float | None:
    """Frame AUC under the published code's protocol: each video's regularity rescaled to
    (x - min) / (max - min), all frames pooled."""
    labelled = [c for c in clips if c.abnormal is not None]
    if not labelled or not has_both_classes(np.concatenate([c.abnormal for c in labelled])):
        return None
    scaled = []
    for clip in labelled:
        r = clip.paper
        span = r.max() - r.min()
        scaled.append((r - r.min()) / span if span > 0 else np.ones_like(r))
    return round(frame_auc(np.concatenate(scaled),
                           np.concatenate([c.abnormal for c in labelled])), 4)


def masks_for(tests: list[ReplayTarget], masks_dir: str | Path | None, scene: str,
               size: int) -> dict[str, np.ndarray]:
    """Each test clip's pixel masks at the model's input size, by clip name: from `masks_dir`
    (a folder of TestNNN_gt folders, or a parent of it) or, without it, the official layout's
    own. Raises DatasetError for a masks folder that does not fit the clips."""
    dirs: dict[str, Path] = {}
    if masks_dir is not None:
        by_number = find_mask_dirs(masks_dir, scene)
        for t in tests:
            number = int("".join(ch for ch in t.name if ch.isdigit()) or -1)
            if number in by_number:
                dirs[t.name] = by_number[number]
        if not dirs:
            have = ", ".join(p.name for _, p in sorted(by_number.items()))
            raise DatasetError(f"--masks: {masks_dir} has no masks for test clips "
                               f"{', '.join(t.name for t in tests)} (has {have})")
    else:
        dirs = {t.name: t.ground_truth.mask_dir for t in tests
                if t.ground_truth is not None and t.ground_truth.mask_dir is not None}
    masks = {}
    for t in tests:
        if t.name not in dirs:
            continue
        clip_masks = read_masks(dirs[t.name], size)
        with open_source(t.source) as src:
            frames = src.frame_count
        if frames is not None and len(clip_masks) != frames:
            raise DatasetError(f"masks {dirs[t.name]} have {len(clip_masks)} frames, test clip "
                               f"{t.name} has {frames}: not this clip's masks")
        masks[t.name] = clip_masks
    return masks


def labelled_test_targets(ucsd_root: str | Path,
                          clip_names: list[str] | None) -> list[ReplayTarget]:
    dataset = find_ucsd(ucsd_root)
    if dataset is None:
        raise DatasetError(f"{ucsd_root} is not a UCSD dataset root (official or JPEG layout)")
    clips = [c for c in dataset.test if c.abnormal_intervals is not None]
    if clip_names:
        clips = [c for c in clips if c.name in clip_names]
    if not clips:
        raise DatasetError(f"no test clips with ground truth in {ucsd_root}"
                           + (f" named {', '.join(clip_names)}" if clip_names else ""))
    return [ReplayTarget(c.name, c.frames_dir, c) for c in clips]


def evaluate(model: LoadedModel, ucsd_root: str | Path, clip_names: list[str] | None = None,
             normal_data: str | Path | None = None, normal_names: list[str] | None = None,
             compare: bool = True, scoring: ScoringOptions | None = None,
             masks: str | Path | None = None) -> Evaluation:
    """Evaluate with the model's own scoring and calibration, and (compare) every variant.

    The model's scoring is read off the live path (what `replay` and `serve` compute);
    variants other than the model's own are calibrated on the normal clips (by default the
    clips the sidecar says were held out of training, from the same UCSD root).
    Localization is measured where there are pixel masks (`masks`, or the official
    layout's own), alerts where there is a calibration."""
    sidecar = model.sidecar
    scoring = scoring or sidecar.scoring
    compare = compare and model.reconstructor.decodes_any_position
    tests = labelled_test_targets(ucsd_root, clip_names)
    patches = tuple(sorted({*PATCHES, scoring.patch} - {0})) if compare else \
        (() if scoring.overlap else None)
    clip_masks = masks_for(tests, masks, find_ucsd(ucsd_root).scene,
                            sidecar.input_spec.size)
    localization = Localization() if clip_masks else None
    # The live score is computed with the model's own calibration where it is the one
    # evaluated, so the alerts below read exactly what the service computes.
    own = sidecar.calibration if sidecar.calibration and \
        sidecar.calibration.scoring == scoring else None
    scored = score_clips(tests, model, scoring, patches, "test clips", own, clip_masks,
                         localization)

    held_out = normal_names or sidecar.provenance.get("held_out_clips") or None
    normal_root = normal_data or (ucsd_root if held_out else None)
    normal: list[ScoredClip] = []
    # Normal clips calibrate the scorings compared, or the one evaluated when the sidecar's
    # calibration is for another: with neither, they are not needed (nor scored).
    if normal_root is not None and held_out and (compare or own is None):
        normal = score_clips(normal_targets(normal_root, held_out), model, scoring, patches,
                             "normal clips")
    data = f"{normal_root} clips {', '.join(held_out)}" if normal else ""
    far = sidecar.calibration.false_alarm_rate if sidecar.calibration else 0.01

    def calibration_for(options: ScoringOptions) -> Calibration | None:
        own = sidecar.calibration
        if own is not None and own.scoring == options:
            return own  # what ships is what is measured
        return calibrate_scored(normal, options, far, data) if normal else None

    calibration = calibration_for(scoring)
    results = [c.result(scoring) for c in scored]
    report = Evaluation(str(model.detector.path), str(ucsd_root), scoring, results,
                        calibration, pooled_metrics(results, calibration))
    report.localization = localization.to_dict() if localization else None
    report.alerts = alert_tally(results, calibration, sidecar.input_spec.clip_length - 1)
    if compare:
        for options in scoring_variants():
            cal = calibration_for(options)
            metrics = pooled_metrics([c.result(options) for c in scored], cal)
            report.variants.append(VariantResult(options, metrics, cal))
    return report


def alert_tally(clips: list[ClipResult], calibration: Calibration | None,
                warmup: int) -> dict | None:
    """The alerts the service raises on the test clips (default rules, the calibration's
    threshold), counted against the ground truth's abnormal intervals."""
    if calibration is None:
        return None
    tally = AlertTally()
    for clip in clips:
        if clip.abnormal is None:
            continue
        live = clip.live
        if live is None or np.isnan(live).all():
            # Scored without this calibration (another scoring's, calibrated afterwards):
            # the live formula on the same errors, no verdict in the warm-up frames.
            live = clip.causal(calibration).copy()
            live[:warmup] = np.nan
        tally.add(live, clip.abnormal, calibration.threshold)
    return tally.to_dict()
