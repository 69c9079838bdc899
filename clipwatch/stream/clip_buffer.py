"""ClipBuffer: the only code that stacks preprocessed frames into clips (T, 1, H, W).

A ring of the last T frames. Once it holds T frames it emits a clip every `stride` new
frames; each clip says which of its frames are new since the previous clip, so that
every frame is scored exactly once (by the first clip that ends at or after it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from clipwatch.errors import ClipwatchError


@dataclass(frozen=True)
class Clip:
    """T consecutive frames and the source indices they came from."""

    frames: np.ndarray  # (T, 1, H, W) float32
    indices: tuple[int, ...]  # source frame index of each of the T frames
    new: int  # how many of the last frames have not been in an earlier clip

    @property
    def end_index(self) -> int:
        return self.indices[-1]

    @property
    def new_positions(self) -> range:
        """Positions within the clip of the frames this clip scores."""
        return range(len(self.indices) - self.new, len(self.indices))


class ClipBuffer:
    """Ring of the last `length` frames, emitting a clip every `stride` frames once full."""

    def __init__(self, length: int = 10, stride: int = 1) -> None:
        self.check_stride(length, stride)
        self.length = length
        self.stride = stride
        self._frames: deque[np.ndarray] = deque(maxlen=length)
        self._indices: deque[int] = deque(maxlen=length)
        self._unscored = 0  # frames pushed since the last emitted clip

    @staticmethod
    def check_stride(length: int, stride: int) -> None:
        if length < 1:
            raise ClipwatchError(f"clip length must be at least 1, got {length}")
        if not 1 <= stride <= length:
            # A stride above the clip length would leave frames no clip ever covers.
            raise ClipwatchError(f"stride must be between 1 and {length}, got {stride}")

    def __len__(self) -> int:
        return len(self._frames)

    def indices(self) -> tuple[int, ...]:
        """Indices of the frames in the ring, oldest first."""
        return tuple(self._indices)

    def unscored(self) -> tuple[int, ...]:
        """Indices of the buffered frames that no emitted clip has scored yet."""
        return tuple(self._indices)[len(self._indices) - self._unscored:] if self._unscored \
            else ()

    def reset(self) -> None:
        """Forget everything, e.g. after a gap in the source, so no clip spans the gap."""
        self._frames.clear()
        self._indices.clear()
        self._unscored = 0

    def push(self, index: int, frame: np.ndarray) -> Clip | None:
        """Add one preprocessed (H, W) frame; returns a clip when one is due."""
        self._frames.append(frame)
        self._indices.append(index)
        self._unscored += 1
        if len(self._frames) < self.length:
            return None
        # The first full window scores all its frames; later ones every `stride` frames.
        first = len(self._frames) == self._unscored
        if first or self._unscored >= self.stride:
            return self._emit()
        return None

    def flush(self) -> Clip | None:
        """At the end of a source: a last clip for frames not yet scored, if the ring is full."""
        if self._unscored and len(self._frames) == self.length:
            return self._emit()
        return None

    def _emit(self) -> Clip:
        new = min(self._unscored, self.length)
        self._unscored = 0
        frames = np.stack(self._frames)[:, None]  # (T, 1, H, W)
        return Clip(frames=frames.astype(np.float32, copy=False), indices=tuple(self._indices),
                    new=new)
