"""Offline replay, the analyst's job: score a clip folder, a video, a stream or a UCSD test set.

Each target (one clip, or every test clip of a UCSD root) is scored frame by frame through
the objects the live service runs (`ClipScorer` and the model's reconstructor, see
model/score_source.py), with the model's scoring and calibration; with ground truth the
frame-level AUC (paper and causal regularity) and EER are computed over all frames pooled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from clipwatch.errors import ClipwatchError, SourceError
from clipwatch.model.clip_scorer import ClipScorer, FrameScore, ScorerSettings
from clipwatch.model.heatmap import overlay
from clipwatch.model.metrics import equal_error_rate, frame_auc, has_both_classes
from clipwatch.model.reconstructors import LoadedModel
from clipwatch.model.regions import Polygon
from clipwatch.model.score_source import score_frames
from clipwatch.model.scoring import causal_regularity, paper_regularity
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration
from clipwatch.stream.sources import Frame, open_source, paced
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
    errors: np.ndarray  # the live score's error: e(t), after the scoring's trailing mean
    abnormal: np.ndarray | None  # ground truth per frame, True = abnormal
    # The live (causal) regularity the service gives each frame: NaN where it gives no
    # verdict (warm-up, no calibration). Offline readings (evaluate's options) leave it out.
    live: np.ndarray | None = None

    @property
    def paper(self) -> np.ndarray:
        return paper_regularity(self.errors)

    def causal(self, calibration: Calibration | None) -> np.ndarray | None:
        """The causal regularity of every frame: the live score's where it gives one, the
        same formula on the warm-up frames' own error where it does not."""
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


def write_heatmap(score: FrameScore, folder: Path) -> None:
    """A scored frame with its heatmap over it, as <folder>/<frame number>.jpg."""
    if score.error_map is not None and score.image is not None:
        path = folder / f"{score.index + 1:06d}.jpg"
        if not cv2.imwrite(str(path), overlay(score.image, score.error_map)):
            raise ClipwatchError(f"cannot write heatmap {path}")


def until_interrupted(frames: Iterator[Frame]) -> Iterator[Frame]:
    """The frames until the source ends or Ctrl-C (a live source runs until interrupted;
    what arrived is still scored)."""
    try:
        yield from frames
    except KeyboardInterrupt:
        return


def score_target(target: ReplayTarget, model: LoadedModel, settings: ScorerSettings,
                 realtime: bool, batch_size: int, bar: tqdm, heatmap_dir: Path | None = None,
                 extra_patches: tuple[int, ...] | None = None,
                 on_map: Callable[[FrameScore], None] | None = None,
                 ) -> tuple[ClipResult, ClipScorer]:
    """Score every frame of one target through the live path (ClipScorer and the model's
    reconstructor); returns its result and the scorer. With `extra_patches` (not None) the
    scorer also keeps every clip's errors at all positions, for offline scoring options.
    `on_map` is shown each frame's score with its error map (and image) as it is scored;
    neither is kept after."""
    offline = extra_patches is not None and model.reconstructor.decodes_any_position
    scorer = ClipScorer(target.name, settings,
                        keep_maps=heatmap_dir is not None or on_map is not None,
                        all_positions=offline, extra_patches=extra_patches or ())
    if heatmap_dir is not None:
        heatmap_dir = heatmap_dir / target.name
        try:
            heatmap_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClipwatchError(f"cannot create {heatmap_dir}: {exc.strerror or exc}") from None
    scores: list[FrameScore] = []
    with open_source(target.source) as src:
        if src.frame_count:
            bar.total = (bar.total or 0) + src.frame_count
            bar.refresh()
        frames = paced(src, src.fps or 10.0) if realtime else iter(src)

        def counted(frames: Iterator[Frame]) -> Iterator[Frame]:
            for frame in frames:
                yield frame
                bar.update(1)

        for score in score_frames(counted(until_interrupted(frames)), scorer,
                                  model.reconstructor, batch_size):
            if on_map is not None:
                on_map(score)
            if heatmap_dir is not None:
                write_heatmap(score, heatmap_dir)
            if score.error_map is not None:
                # Only numbers are kept: holding maps and images for a long replay would
                # grow without bound.
                score = replace(score, error_map=None, image=None)
            scores.append(score)
    # One clip's worth of frames, whatever the variant: a model that steps frame by frame
    # scores fewer, but those are all warm-up frames, which the live score gives no verdict.
    needed = scorer.spec.clip_length
    if len(scores) < needed:
        frames = max(len(scores), len(scorer.buffer))
        raise SourceError(f"{target.source} has {frames} frames; scoring needs at least {needed}")
    scores.sort(key=lambda s: s.index)
    indices = np.array([s.index for s in scores])
    result = ClipResult(target.name, indices + 1, np.array([s.timestamp for s in scores]),
                        np.array([s.score_error for s in scores]), labels_for(target, indices),
                        np.array([np.nan if s.regularity is None else s.regularity
                                  for s in scores]))
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


def replay(targets: list[ReplayTarget], model: LoadedModel, stride: int = 1,
           realtime: bool = False, batch_size: int = 8, show_progress: bool | None = None,
           heatmap_dir: Path | None = None,
           scoring: ScoringOptions | None = None,
           masks: tuple[Polygon, ...] = ()) -> ReplayReport:
    """Score every target as a camera would be scored (the model's variant, scoring and
    calibration, unless `scoring` asks for another reading, which is then uncalibrated),
    with a camera's `masks` (polygons in the frames' pixel coordinates) if given."""
    started = time.monotonic()
    own = model.sidecar.calibration
    calibration = own if scoring is None or (own and own.scoring == scoring) else None
    settings = replace(model.settings(stride, calibration, scoring=scoring), masks=masks)
    results, clips_scored = [], 0
    # Known totals (folders, files) give a real bar; tqdm hides itself when not on a terminal.
    disable = None if show_progress is None else not show_progress
    bar = tqdm(total=None, unit="frame", disable=disable, dynamic_ncols=True, leave=False)
    try:
        for target in targets:
            bar.set_description(target.name)
            result, scorer = score_target(target, model, settings, realtime, batch_size, bar,
                                          heatmap_dir)
            results.append(result)
            clips_scored += scorer.clips_scored
    finally:
        bar.close()
    report = ReplayReport(results, calibration, time.monotonic() - started, clips_scored)
    report.metrics = pooled_metrics(results, report.calibration)
    return report
