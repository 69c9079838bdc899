"""What a camera worker sends a scorer, and how a scorer knows its cache is the camera's.

Scorer replicas keep per-camera caches (a ConvLSTM state carried from frame to frame, or
encoded features; see model/reconstructors.py) that are only right when they have seen the
camera's previous clip. So each `ScoreCall` names the last frame the camera sent before it
(`after`), and a replica answers `MISS` for a call that does not continue what it holds (it
restarted, or the camera was routed elsewhere): the camera then resends its recent clips
(`replay`) so the replica rebuilds the cache, never leaving a gap in the scores.

Frames travel as the uint8 pixels they were preprocessed from (`packed`), and become the
same float32 values on the scorer (`unpacked`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from clipwatch.model.reconstructor import ClipRequest
from clipwatch.stream.preprocess import InputSpec, denormalize, normalize

MISS = "miss"  # a scorer's answer to a call that does not continue the camera's cache


@dataclass(frozen=True)
class ScoreCall:
    """One camera's due clips (in frame order), maybe preceded by clips replayed to rebuild
    the scorer's cache; only the last `len(requests) - replay` are answered."""

    camera: str
    requests: tuple[ClipRequest, ...]
    after: int | None  # the camera's last frame index sent before; None: starts afresh
    replay: int = 0  # leading requests sent only to rebuild the cache

    def __post_init__(self) -> None:
        if not self.requests or any(r.camera != self.camera for r in self.requests):
            raise ValueError("a score call holds one camera's clips, at least one")
        if self.after is None and not self.requests[0].fresh:
            raise ValueError("a call that does not continue a cache must start fresh")

    @property
    def last_index(self) -> int:
        return self.requests[-1].indices[-1]


def packed(requests: Sequence[ClipRequest], spec: InputSpec) -> tuple[ClipRequest, ...]:
    """The clips with their frames as the uint8 pixels they were made from: a quarter of the
    bytes (a 227x227 frame is 52 KB, under Ray's 100 KB limit for passing a call's arguments
    inline instead of through the object store)."""
    return tuple(replace(r, frames=denormalize(r.frames, spec)) for r in requests)


def unpacked(requests: Sequence[ClipRequest], spec: InputSpec) -> list[ClipRequest]:
    """`packed` undone: the same float32 frames, bit for bit (`normalize` of the pixels that
    `preprocess` normalized)."""
    return [replace(r, frames=normalize(r.frames, spec)) for r in requests]


class Continuity:
    """A replica's record of the last frame it scored for each camera: whether a call
    continues its cache."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def continues(self, call: ScoreCall) -> bool:
        return call.after is None or self._last.get(call.camera) == call.after

    def scored(self, calls: Sequence[ScoreCall]) -> None:
        for call in calls:
            self._last[call.camera] = call.last_index

    def forget(self, cameras: Sequence[str]) -> None:
        for camera in cameras:
            self._last.pop(camera, None)
