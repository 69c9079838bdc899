"""Heatmaps: where a frame is irregular, colour-mapped over the camera's own frame.

The heatmap is the per-pixel squared error of the newest frame of a clip (DESIGN.md),
resized from the model's input size back to the camera frame's size.
"""

from __future__ import annotations

import cv2
import numpy as np

from clipwatch.stream.preprocess import to_gray

# Per-pixel squared error that shows as the hottest colour. Inputs are normalized to [-1, 1],
# so 0.25 is a difference of a quarter of the grey range: well above what a trained model
# leaves on normal frames, reached by the objects it has never seen. A fixed scale (rather
# than per-frame) keeps a normal frame looking calm instead of stretching its noise to red.
DEFAULT_VMAX = 0.25


def heatmap(error_map: np.ndarray, frame_shape: tuple[int, ...],
            vmax: float = DEFAULT_VMAX) -> np.ndarray:
    """(S, S) error map -> (H, W, 3) uint8 BGR colour map, scaled so `vmax` is the hottest."""
    height, width = frame_shape[:2]
    scaled = np.clip(error_map / max(vmax, 1e-12), 0.0, 1.0)
    resized = cv2.resize(scaled.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap((resized * 255).astype(np.uint8), cv2.COLORMAP_JET)


def overlay(frame: np.ndarray, error_map: np.ndarray, vmax: float = DEFAULT_VMAX,
            alpha: float = 0.6) -> np.ndarray:
    """The frame (any OpenCV layout) with the heatmap blended over it, BGR uint8.

    Only irregular pixels are tinted: blending the whole colour map would paint the normal
    background blue and hide the scene the operator is looking at.
    """
    base = cv2.cvtColor(to_gray(frame), cv2.COLOR_GRAY2BGR)
    heat = heatmap(error_map, base.shape, vmax)
    weight = np.clip(cv2.resize(error_map.astype(np.float32), (base.shape[1], base.shape[0]))
                     / max(vmax, 1e-12), 0.0, 1.0)[..., None] * alpha
    return (base * (1.0 - weight) + heat * weight).astype(np.uint8)
