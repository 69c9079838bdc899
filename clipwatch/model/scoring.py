"""Scores from reconstructions, as numpy: e(t), paper and causal regularity, scoring options.

Definitions (DESIGN.md, must not drift):
- e(t): sum over pixels of the squared difference between frame t and its reconstruction.
- paper regularity: s(t) = 1 - (e(t) - min_t e) / max_t e, min and max over one video.
- causal regularity: the same form with e_lo, e_hi from calibration on normal footage.

Scoring options (`ScoringOptions`) change what e(t) is made of, each measured by
`clipwatch evaluate`: the largest error over a local patch instead of the whole frame (the
abnormal objects in UCSD are small), the mean over all clips that contain the frame, and a
trailing mean over the last frames. The plain whole-frame sum is `ScoringOptions()`.
"""

from __future__ import annotations

import cv2
import numpy as np

from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration

__all__ = ["ScoringOptions", "causal_regularity", "error_maps", "frame_errors",
           "live_trailing_mean", "paper_regularity", "patch_errors", "trailing_mean"]


def error_maps(frames: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-pixel squared error (..., H, W) of frames against their reconstruction."""
    if frames.shape != reconstruction.shape:
        raise ValueError(f"frames {frames.shape} and reconstruction {reconstruction.shape} differ")
    diff = frames.astype(np.float32) - reconstruction.astype(np.float32)
    return np.square(diff)


def frame_errors(maps: np.ndarray) -> np.ndarray:
    """e(t) from per-pixel error maps (..., H, W): the sum over each frame's pixels."""
    return maps.sum(axis=(-2, -1), dtype=np.float64)


def paper_regularity(errors: np.ndarray) -> np.ndarray:
    """Hasan et al. 2016 regularity over one whole video (needs all its frames)."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return errors.copy()
    peak = errors.max()
    if peak <= 0:
        return np.ones_like(errors)  # a perfect reconstruction everywhere is perfectly regular
    return 1.0 - (errors - errors.min()) / peak


def causal_regularity(errors: np.ndarray | float, calibration: Calibration) -> np.ndarray:
    """The live score: paper form with calibrated constants, so it needs no future frames."""
    errors = np.asarray(errors, dtype=np.float64)
    return 1.0 - (errors - calibration.e_lo) / calibration.e_hi


def patch_errors(maps: np.ndarray, patch: int) -> np.ndarray:
    """The largest sum of squared error over any patch x patch window, per map (..., H, W)."""
    flat = maps.reshape(-1, *maps.shape[-2:]).astype(np.float32, copy=False)
    best = np.empty(len(flat), dtype=np.float64)
    for i, error_map in enumerate(flat):
        # An unnormalized box filter is the window sum at every position; border windows are
        # left out (they would be partly outside the frame).
        sums = cv2.boxFilter(error_map, -1, (patch, patch), normalize=False,
                             borderType=cv2.BORDER_CONSTANT)
        half = patch // 2
        inner = sums[half:sums.shape[0] - (patch - 1 - half),
                     half:sums.shape[1] - (patch - 1 - half)]
        best[i] = float(inner.max()) if inner.size else float(sums.max())
    return best.reshape(maps.shape[:-2])


def trailing_mean(errors: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and the window-1 before it (fewer at the start): causal smoothing."""
    errors = np.asarray(errors, dtype=np.float64)
    if window <= 1 or errors.size == 0:
        return errors.copy()
    sums = np.cumsum(np.concatenate([[0.0], errors]))
    ends = np.arange(1, errors.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def live_trailing_mean(errors: np.ndarray, window: int, warmup: int) -> np.ndarray:
    """The live score's error over one unbroken source (LiveScorer, frame by frame): the
    first `warmup` frames keep their own e(t) (they get no verdict live) and stay out of the
    trailing mean, which runs over the frames after them."""
    errors = np.asarray(errors, dtype=np.float64)
    out = errors.copy()
    out[warmup:] = trailing_mean(errors[warmup:], window)
    return out
