"""The inference seam: what a camera hands to inference, and what it gets back.

A `ClipRequest` is plain data (a camera id, the clip's frame indices, its preprocessed
frames, the positions whose reconstruction is wanted), so a `Reconstructor` can sit behind
a queue or an RPC. Per-camera caches (encoded features, a carried ConvLSTM state) live
inside the reconstructor, keyed by camera id; after a gap in a camera's frames the caller
says `reset(camera)`, and the next request starts afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ClipRequest:
    """One clip of one camera, to be reconstructed."""

    camera: str
    indices: tuple[int, ...]  # the camera's frame sequence number at each position
    frames: np.ndarray  # (T, 1, S, S) float32, preprocessed
    new: int  # how many of the last positions are frames no earlier clip scored
    decode: tuple[int, ...]  # positions to reconstruct: the new ones, or all (offline)
    # The camera's first clip after a start or a gap: its caches restart here. Carried in
    # the request (not only by `reset`) so it stays in order with the clips around it even
    # when requests wait in a batch or a queue.
    fresh: bool = False

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.frames):
            raise ValueError(f"{len(self.indices)} indices for {len(self.frames)} frames")
        if not set(self.new_positions) <= set(self.decode) or \
                not all(0 <= p < len(self.indices) for p in self.decode):
            raise ValueError(f"decode positions {self.decode} must lie in a clip of "
                             f"{len(self.indices)} frames and hold its {self.new} new ones")

    @property
    def new_positions(self) -> range:
        """Positions of the frames this clip scores (the last `new`)."""
        return range(len(self.indices) - self.new, len(self.indices))


class Reconstructor(Protocol):
    """Turns requests (of one or several cameras, in each camera's frame order) into the
    reconstructions of their `decode` positions, each (len(decode), 1, S, S)."""

    #: frames per clip it takes: None for the model's own clip length, 1 for a model that
    #: carries its own state from frame to frame
    clip_length: int | None
    #: whether it can reconstruct positions other than the clip's newest frames
    decodes_any_position: bool
    device: str  # where it runs: 'cpu' or 'cuda'

    def reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]: ...

    def reset(self, camera: str) -> None:
        """Forget this camera's caches (the camera is gone, or its source ended)."""
        ...


def fresh_segments(requests: Sequence[ClipRequest]) -> list[list[ClipRequest]]:
    """Requests cut where a camera restarts (a `fresh` request of a camera already in the
    current run), so a reconstructor can reset that camera's caches between runs."""
    segments: list[list[ClipRequest]] = []
    cameras: set[str] = set()
    for request in requests:
        if not segments or (request.fresh and request.camera in cameras):
            segments.append([])
            cameras = set()
        segments[-1].append(request)
        cameras.add(request.camera)
    return segments
