"""Offline replay, the analyst's job: score a clip folder, a video, a stream or a UCSD test set.

Each target (one clip, or every test clip of a UCSD root) is scored frame by frame through
the same path the live service uses; with ground truth the frame-level AUC (paper and
causal regularity) and EER are computed over all frames pooled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from clipwatch.errors import ClipwatchError, SourceError
from clipwatch.model.clip_scorer import ClipScorer, FrameScore
from clipwatch.model.detector import Detector
from clipwatch.model.frame_series import frame_series
from clipwatch.model.heatmap import overlay
from clipwatch.model.metrics import equal_error_rate, frame_auc, has_both_classes
from clipwatch.model.scoring import causal_regularity, paper_regularity
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration
from clipwatch.stream.sources import open_source, paced
from clipwatch.stream.ucsd import UcsdClip, find_ucsd, ground_truth_for_folder


@dataclass(frozen=True)
class ReplayTarget:
    name: str
    source: str | Path  # what open_source takes; a Path is never read as a webcam index
    ground_truth: UcsdClip | None


@dataclass
class ClipResult:
    name: str
    frames: np.ndarray  # 1-based frame numbers
    timestamps: np.ndarray
    errors: np.ndarray  # e(t)
    abnormal: np.ndarray | None  # ground truth per frame, True = abnormal

    @property
    def paper(self) -> np.ndarray:
        return paper_regularity(self.errors)

    def causal(self, calibration: Calibration | None) -> np.ndarray | None:
        return causal_regularity(self.errors, calibration) if calibration else None


@dataclass
class ReplayReport:
    clips: list[ClipResult]
    calibration: Calibration | None
    seconds: float
    clips_scored: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(len(c.errors) for c in self.clips)


def replay_targets(source: str) -> list[ReplayTarget]:
    """A UCSD root -> its test clips; anything else -> itself, with ground truth if it has any.

    A single folder or file is opened once here, so that a missing path, an empty folder or a
    file that is not a video is reported before the model is loaded.
    """
    path = Path(source)
    if path.is_dir():
        dataset = find_ucsd(path)
        if dataset is not None:
            if not dataset.test:
                raise SourceError(f"UCSD dataset {path} has no test clips to replay")
            return [ReplayTarget(c.name, c.frames_dir, c) for c in dataset.test]
        target = ReplayTarget(path.resolve().name, path, ground_truth_for_folder(path))
    elif path.is_file():
        target = ReplayTarget(path.name, path, None)
    else:
        target = ReplayTarget(source, source, None)  # a URL or webcam index; or missing
        if "://" in source or source.isdigit():
            return [target]  # live sources are opened when replay starts
    open_source(target.source).close()
    return [target]


def write_heatmaps(scores: list[FrameScore], folder: Path) -> None:
    """Each scored frame with its heatmap over it, as <folder>/<frame number>.jpg."""
    for score in scores:
        if score.error_map is not None and score.image is not None:
            path = folder / f"{score.index + 1:06d}.jpg"
            if not cv2.imwrite(str(path), overlay(score.image, score.error_map)):
                raise ClipwatchError(f"cannot write heatmap {path}")


def score_target(target: ReplayTarget, detector: Detector, stride: int, realtime: bool,
                 batch_size: int, bar: tqdm, heatmap_dir: Path | None = None,
                 scoring: ScoringOptions | None = None,
                 extra_patches: tuple[int, ...] = ()) -> tuple[ClipResult, ClipScorer]:
    """Score every frame of one target; returns its result and the scorer (clips run, and
    every clip's errors for re-scoring under other options)."""
    scoring = scoring or detector.sidecar.scoring
    scorer = ClipScorer(detector, stride=stride, batch_size=batch_size,
                        keep_maps=heatmap_dir is not None, patch=scoring.patch,
                        keep_clip_errors=True, extra_patches=extra_patches)
    if heatmap_dir is not None:
        heatmap_dir = heatmap_dir / target.name
        try:
            heatmap_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClipwatchError(f"cannot create {heatmap_dir}: {exc.strerror or exc}") from None
    scores = []
    with open_source(target.source) as src:
        if src.frame_count:
            bar.total = (bar.total or 0) + src.frame_count
            bar.refresh()
        frames = paced(src, src.fps or 10.0) if realtime else iter(src)
        try:
            for frame in frames:
                new = scorer.push(frame)
                if heatmap_dir is not None:
                    write_heatmaps(new, heatmap_dir)
                scores.extend(new)
                bar.update(1)
        except KeyboardInterrupt:
            pass  # a live source runs until interrupted; score what arrived
        seen = len(scorer.buffer)
        new = scorer.flush()
        if heatmap_dir is not None:
            write_heatmaps(new, heatmap_dir)
        scores.extend(new)
    if not scores:
        raise SourceError(f"{target.source} has {seen} frames; scoring needs at least "
                          f"{detector.input_spec.clip_length}")
    timestamps = {s.index: s.timestamp for s in scores}
    indices, errors = frame_series(scorer.clip_errors, scoring)
    # Only numbers are kept: the maps and images were written above, and holding them for
    # a long replay would grow without bound.
    result = ClipResult(target.name, indices + 1, np.array([timestamps[i] for i in indices]),
                        errors, labels_for(target, indices))
    return result, scorer


def labels_for(target: ReplayTarget, indices: np.ndarray) -> np.ndarray | None:
    """Ground truth (True = abnormal) for the given 0-based frame indices, if there is any."""
    if target.ground_truth is None or target.ground_truth.abnormal_intervals is None:
        return None
    return target.ground_truth.labels(int(indices.max()) + 1)[indices]


def pooled_metrics(clips: list[ClipResult], calibration: Calibration | None) -> dict[str, float]:
    """Frame-level AUC (paper: per-video normalized, pooled; causal) and EER, where defined."""
    labelled = [c for c in clips if c.abnormal is not None]
    if not labelled:
        return {}
    abnormal = np.concatenate([c.abnormal for c in labelled])
    if not has_both_classes(abnormal):
        return {}
    paper = np.concatenate([c.paper for c in labelled])
    metrics = {"auc_paper": frame_auc(paper, abnormal),
               "eer_paper": equal_error_rate(paper, abnormal)}
    if calibration is not None:
        causal = np.concatenate([c.causal(calibration) for c in labelled])
        metrics["auc_causal"] = frame_auc(causal, abnormal)
        metrics["eer_causal"] = equal_error_rate(causal, abnormal)
    metrics["frames_labelled"] = float(len(abnormal))
    metrics["frames_abnormal"] = float(abnormal.sum())
    return metrics


def replay(targets: list[ReplayTarget], detector: Detector, stride: int = 1,
           realtime: bool = False, batch_size: int = 8, show_progress: bool | None = None,
           heatmap_dir: Path | None = None,
           scoring: ScoringOptions | None = None) -> ReplayReport:
    started = time.monotonic()
    results, clips_scored = [], 0
    # Known totals (folders, files) give a real bar; tqdm hides itself when not on a terminal.
    disable = None if show_progress is None else not show_progress
    bar = tqdm(total=None, unit="frame", disable=disable, dynamic_ncols=True, leave=False)
    try:
        for target in targets:
            bar.set_description(target.name)
            result, scorer = score_target(target, detector, stride, realtime, batch_size, bar,
                                          heatmap_dir, scoring)
            results.append(result)
            clips_scored += scorer.clips_scored
    finally:
        bar.close()
    report = ReplayReport(results, detector.sidecar.calibration, time.monotonic() - started,
                          clips_scored)
    report.metrics = pooled_metrics(results, report.calibration)
    return report
