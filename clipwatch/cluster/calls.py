"""What a camera worker sends a scorer, and how a scorer knows its cache is the camera's.

Scorer replicas keep per-camera caches (a ConvLSTM state carried from frame to frame, or
encoded features; see model/reconstructors.py) that are only right when they have seen the
camera's previous clip. So each `ScoreCall` names the cache it continues (`after`), and a
replica answers `MISS` for a call that does not continue what it holds (it restarted, or
the camera was routed elsewhere): the camera then resends its recent clips (`replay`) so the
replica rebuilds the cache, never leaving a gap in the scores. `replay_plan` says how many
clips that takes for a reconstructor, and from where the rebuilt cache is the one the camera
would have had (remote.py picks them).

Frames travel as the uint8 pixels they were preprocessed from (`packed`), and become the
same float32 values on the scorer (`unpacked`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from clipwatch.model.reconstructor import ClipRequest
from clipwatch.stream.preprocess import InputSpec, denormalize, normalize

MISS = "miss"  # a scorer's answer to a call that does not continue the camera's cache


@dataclass(frozen=True)
class ScoreCall:
    """One camera's due clips (in frame order), maybe preceded by clips replayed to rebuild
    the scorer's cache; only the last `len(requests) - replay` are answered.

    A cache is named by its `epoch` (new at each start afresh: frame indices begin again
    when a camera's pipeline restarts, so an index alone could match an older cache) and
    the last frame it holds: `after` is that pair, None for a call that starts afresh."""

    camera: str
    requests: tuple[ClipRequest, ...]
    epoch: str
    after: tuple[str, int] | None
    replay: int = 0  # leading requests sent only to rebuild the cache

    def __post_init__(self) -> None:
        if not self.requests or any(r.camera != self.camera for r in self.requests):
            raise ValueError("a score call holds one camera's clips, at least one")
        if self.after is None and not self.requests[0].fresh:
            raise ValueError("a call that does not continue a cache must start fresh")

    @property
    def holds(self) -> tuple[str, int]:
        """The cache a replica holds once it has scored this call."""
        return self.epoch, self.requests[-1].indices[-1]


@dataclass(frozen=True)
class ReplayPlan:
    """How a reconstructor's per-camera cache is rebuilt: by restarting it (fresh) at a clip
    whose number since the camera's start is a multiple of `period`, at least `period` clips
    back, so it holds `keep` clips. A model that restarts its states on a schedule
    (StaggeredStates: every `period` frames) gets exactly the cache it had; a clip model
    needs nothing (each clip carries its frames); a model that never restarts its state
    (StatefulFrames) cannot be rebuilt exactly, and gets two windows of context."""

    period: int
    keep: int


def replay_plan(reconstructor: Any, window: int) -> ReplayPlan:
    if reconstructor.clip_length != 1:
        return ReplayPlan(period=1, keep=0)
    period = getattr(reconstructor, "period", 0)
    if period > 0:
        return ReplayPlan(period=period, keep=2 * period)
    return ReplayPlan(period=1, keep=2 * window)


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
    """A replica's record of the cache it holds for each camera (epoch, last frame):
    whether a call continues it."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, int]] = {}

    def continues(self, call: ScoreCall) -> bool:
        return call.after is None or self._held.get(call.camera) == call.after

    def scored(self, calls: Sequence[ScoreCall]) -> None:
        for call in calls:
            self._held[call.camera] = call.holds

    def forget(self, cameras: Sequence[str]) -> None:
        for camera in cameras:
            self._held.pop(camera, None)
