"""The one preprocessing function: every frame a model sees (training, replay, live) comes here.

A frame becomes grayscale, is resized to the model's square input and normalized as the
model's sidecar says, so a model never sees frames prepared another way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """How a model expects clips: (clip_length, 1, size, size), value (pixel/255 - mean) / std."""

    clip_length: int = 10
    size: int = 227
    mean: float = 0.5
    std: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        return cls(
            clip_length=int(data["clip_length"]),
            size=int(data["size"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
        )


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 grayscale (H, W) view of a decoded frame (BGR, BGRA or already gray)."""
    if image.size == 0:  # a decoder can hand over an empty frame; OpenCV would assert
        raise ValueError(f"cannot read an empty frame (shape {image.shape}) as an image")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"cannot read a frame of shape {image.shape} as an image")


def model_pixels(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A decoded frame -> uint8 (size, size) grayscale: what the model sees, before the value
    mapping (recorded footage is stored this way: preprocessing it again changes nothing)."""
    gray = to_gray(image)
    if gray.dtype != np.uint8:
        # 16-bit or float frames (some TIFF and camera exports) are scaled into 8-bit first.
        gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if gray.shape == (spec.size, spec.size):
        return gray
    # INTER_AREA when shrinking avoids aliasing; the model was trained on frames made the same way.
    shrinking = gray.shape[0] > spec.size or gray.shape[1] > spec.size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (spec.size, spec.size), interpolation=interpolation)


def preprocess(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A decoded frame -> float32 (size, size) normalized as the model expects."""
    return normalize(model_pixels(image, spec), spec)


def normalize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 model pixels -> the float32 values the model takes (the sidecar's mapping); the
    same pixels always give the same floats, so frames can travel as pixels (cluster mode)."""
    return ((pixels.astype(np.float32) / 255.0) - spec.mean) / spec.std


def denormalize(frame: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Inverse of the value mapping: normalized floats -> uint8 pixels (for display)."""
    pixels = (frame * spec.std + spec.mean) * 255.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)  # round: truncating loses a level
