"""JPEG encoding of live frames, snapshots and heatmap overlays (one place for OpenCV's
encoder and its quality setting)."""

from __future__ import annotations

import cv2
import numpy as np

from clipwatch.model.heatmap import overlay


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def overlay_jpeg(image: np.ndarray, error_map: np.ndarray, quality: int) -> bytes:
    """The frame with its heatmap over it (DESIGN.md's heatmap), as a JPEG."""
    return encode_jpeg(overlay(image, error_map), quality)
