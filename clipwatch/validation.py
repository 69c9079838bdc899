"""Validation without test labels: synthetic anomalies made from held-out normal clips.

Training length, pseudo-anomaly settings and model choices are made on this measure, so the
labelled test clips are only ever used to report. Each held-out normal clip (never trained
on) is replayed through the live path (the model's variant, stride 1) as it is, and with
synthetic anomalies in the middle of it:

- `fast`: a stretch of SEGMENT frames plays at K times the speed (K-1 of every K frames
  skipped), then normal speed resumes: everyone in view moves K times faster.
- `fast_box`: the same stretch, but only inside a box around the place with the most motion
  in it; the rest of the frame plays at normal speed: one fast mover among normal walkers.
  The box is the pixel mask for the heatmap's peak.

Measures (under the model's scoring, or one named: candidates are compared under the scoring
they will ship with; frames the live score gives a verdict; the synthetic stretch is abnormal, every
other frame of every replay normal): the frame AUC of the live score's error (the trailing
mean, which the causal regularity maps monotonically, so no calibration is needed) for each
kind, and the share of `fast_box` frames whose heatmap peak lies on the box (quality.py's
definition). `score` is the mean of the three, the one number runs are compared by. With the
model's calibration, the alerts the service would raise on every replay are counted too
(each synthetic stretch is one event; the alert rules are chosen on these counts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from clipwatch.config import AlertConfig
from clipwatch.errors import DatasetError
from clipwatch.model.clip_scorer import ClipScorer
from clipwatch.model.metrics import frame_auc
from clipwatch.model.reconstructors import LoadedModel
from clipwatch.model.score_source import score_frames
from clipwatch.model.scoring import causal_regularity
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration
from clipwatch.quality import AlertTally, peak_in_mask
from clipwatch.stream.footage import normal_clip_paths
from clipwatch.stream.sources import Frame, open_source

SPEEDUPS = (2, 3, 4)  # K: frames skipped are K-1 of every K
SEGMENT = 20  # synthetic frames per anomaly
START = 30  # the anomaly starts here (after warm-up and a stretch of normal frames)
BOX = 72  # side of the fast box, in pixels of the source frame


@dataclass
class Sequence:
    """One replay: raw frames, which are abnormal, and the abnormal pixels (source size)."""

    name: str
    images: list[np.ndarray]
    abnormal: np.ndarray  # (N,) bool
    box: tuple[int, int, int, int] | None = None  # y0, y1, x0, x1 of the fast box


def fast_sequence(name: str, images: list[np.ndarray], speedup: int) -> Sequence:
    """START normal frames, SEGMENT frames at `speedup` times the speed, then the rest."""
    end = START + speedup * SEGMENT
    if end >= len(images):
        raise DatasetError(f"{name}: {len(images)} frames are too few for a x{speedup} stretch")
    picked = list(range(START)) + list(range(START, end, speedup)) + list(range(end, len(images)))
    abnormal = np.zeros(len(picked), bool)
    abnormal[START:START + SEGMENT] = True
    return Sequence(f"{name}/fast{speedup}", [images[i] for i in picked], abnormal)


def busiest_box(images: list[np.ndarray]) -> tuple[int, int, int, int]:
    """The BOX x BOX window with the most frame-to-frame change over `images`."""
    gray = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).astype(np.float32) for im in images]
    motion = sum(np.abs(b - a) for a, b in zip(gray, gray[1:], strict=False))
    height, width = motion.shape
    side = min(BOX, height, width)
    score = cv2.boxFilter(motion, -1, (side, side), normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    half = side // 2
    # Only centres whose box lies inside the frame.
    inner = score[half:height - (side - half) + 1, half:width - (side - half) + 1]
    cy, cx = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return cy, cy + side, cx, cx + side


def fast_box_sequence(name: str, images: list[np.ndarray], speedup: int) -> Sequence:
    """The clip at normal speed, with the busiest box playing at `speedup` times the speed
    for SEGMENT frames."""
    end = START + speedup * SEGMENT
    if end >= len(images):
        raise DatasetError(f"{name}: {len(images)} frames are too few for a x{speedup} stretch")
    fast = [images[i] for i in range(START, end, speedup)]
    y0, y1, x0, x1 = busiest_box(fast)
    out = [im for im in images]
    for k, source in enumerate(fast):
        frame = images[START + k].copy()
        frame[y0:y1, x0:x1] = source[y0:y1, x0:x1]
        out[START + k] = frame
    abnormal = np.zeros(len(out), bool)
    abnormal[START:START + SEGMENT] = True
    return Sequence(f"{name}/fast_box{speedup}", out, abnormal, (y0, y1, x0, x1))


def synthetic_sequences(name: str, images: list[np.ndarray],
                        speedups: tuple[int, ...] = SPEEDUPS) -> list[Sequence]:
    """The clip as it is, then each kind of synthetic anomaly at each speed-up."""
    normal = Sequence(f"{name}/normal", images, np.zeros(len(images), bool))
    return [normal, *(fast_sequence(name, images, k) for k in speedups),
            *(fast_box_sequence(name, images, k) for k in speedups)]


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int], size: int) -> np.ndarray:
    """The box as a mask at the model's input size (nearest neighbour, as the test masks)."""
    mask = np.zeros(shape, np.uint8)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = 1
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)


@dataclass
class SequenceScores:
    name: str
    errors: np.ndarray  # the live score's error of each judged frame
    abnormal: np.ndarray
    peak_hits: int = 0
    peak_frames: int = 0


def score_sequence(sequence: Sequence, model: LoadedModel,
                   scoring: ScoringOptions | None = None) -> SequenceScores:
    """Replay one sequence as a camera through the live path (the model's scoring unless
    told otherwise)."""
    settings = model.settings(1, calibration=None, scoring=scoring)
    scorer = ClipScorer(sequence.name, settings, keep_maps=sequence.box is not None)
    mask = None
    if sequence.box is not None:
        mask = box_mask(sequence.box, sequence.images[0].shape[:2], settings.spec.size)
    frames = (Frame(i, i / 10.0, image) for i, image in enumerate(sequence.images))
    errors, abnormal, hits, judged = [], [], 0, 0
    for score in score_frames(frames, scorer, model.reconstructor):
        if score.index < scorer.live.warmup_frames:
            continue  # warm-up: no verdict
        errors.append(score.score_error)
        abnormal.append(sequence.abnormal[score.index])
        if mask is not None and sequence.abnormal[score.index]:
            judged += 1
            hits += bool(peak_in_mask(score.error_map, mask))
    return SequenceScores(sequence.name, np.array(errors), np.array(abnormal, bool), hits, judged)


@dataclass
class Validation:
    clips: list[str]
    fast_auc: float
    fast_box_auc: float
    fast_box_peak: float
    normal_error_mean: float  # the live error on the clips as they are
    score: float
    per_sequence: dict[str, float] = field(default_factory=dict)  # AUC vs the normal frames
    # With a calibration: the alerts the service raises on the replays (quality.AlertTally;
    # the normal replays have no events, so any alert on them is false).
    alerts: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def load_images(path: Path) -> list[np.ndarray]:
    with open_source(path) as source:
        return [frame.image for frame in source]


def validate(model: LoadedModel, normal_data: str | Path, clip_names: list[str],
             speedups: tuple[int, ...] = SPEEDUPS, rules: AlertConfig | None = None,
             scoring: ScoringOptions | None = None) -> Validation:
    """The validation measure on held-out normal clips (by name), under the model's scoring
    or `scoring`; alerts under `rules` (default: the service's) where the model has a
    calibration for that scoring."""
    scored = score_sequences(model, normal_data, clip_names, speedups, scoring)
    calibration = model.sidecar.calibration
    if calibration is not None and scoring is not None and calibration.scoring != scoring:
        calibration = None
    return summarize(clip_names, scored, calibration, rules)


def score_sequences(model: LoadedModel, normal_data: str | Path, clip_names: list[str],
                    speedups: tuple[int, ...] = SPEEDUPS,
                    scoring: ScoringOptions | None = None) -> list[SequenceScores]:
    """Every replay of every named held-out normal clip, scored through the live path."""
    paths = dict(normal_clip_paths(normal_data))
    missing = [n for n in clip_names if n not in paths]
    if missing or not clip_names:
        raise DatasetError(f"validation needs held-out normal clips of {normal_data}; "
                           f"missing {', '.join(missing) or 'names'}")
    scored: list[SequenceScores] = []
    for name in clip_names:
        for sequence in synthetic_sequences(name, load_images(paths[name]), speedups):
            scored.append(score_sequence(sequence, model, scoring))
    return scored


def alert_counts(scored: list[SequenceScores], calibration: Calibration,
                 rules: AlertConfig | None = None) -> dict:
    """The service's alerts on every replay, under `rules`, against the synthetic events."""
    tally = AlertTally()
    for s in scored:
        tally.add(causal_regularity(s.errors, calibration), s.abnormal, calibration.threshold,
                  rules)
    return tally.to_dict()


def summarize(clip_names: list[str], scored: list[SequenceScores],
              calibration: Calibration | None, rules: AlertConfig | None = None) -> Validation:
    fast = pooled_auc([s for s in scored if "/fast" in s.name and "box" not in s.name], scored)
    box = pooled_auc([s for s in scored if "/fast_box" in s.name], scored)
    boxes = [s for s in scored if "fast_box" in s.name]
    peak = sum(s.peak_hits for s in boxes) / max(1, sum(s.peak_frames for s in boxes))
    normal_errors = np.concatenate([s.errors for s in scored if s.name.endswith("/normal")])
    per_sequence = {s.name: pooled_auc([s], scored)
                    for s in scored if not s.name.endswith("/normal")}
    alerts = alert_counts(scored, calibration, rules) if calibration is not None else None
    return Validation(list(clip_names), fast, box, peak, float(normal_errors.mean()),
                      float(np.mean([fast, box, peak])), per_sequence, alerts)


def pooled_auc(synthetic: list[SequenceScores], scored: list[SequenceScores]) -> float:
    """AUC over the `synthetic` replays and every normal replay in `scored`, all their
    judged frames pooled."""
    picked = [s for s in scored if s.name.endswith("/normal")] + synthetic
    errors = np.concatenate([s.errors for s in picked])
    return float(frame_auc(-errors, np.concatenate([s.abnormal for s in picked])))
