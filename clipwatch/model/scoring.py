"""Scores from reconstructions, as pure numpy: e(t), paper and causal regularity.

Definitions (DESIGN.md, must not drift):
- e(t): sum over pixels of the squared difference between frame t and its reconstruction.
- paper regularity: s(t) = 1 - (e(t) - min_t e) / max_t e, min and max over one video.
- causal regularity: the same form with e_lo, e_hi from calibration on normal footage.
"""

from __future__ import annotations

import numpy as np

from clipwatch.model.sidecar import Calibration


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
