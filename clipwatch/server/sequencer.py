"""FrameSequencer: a camera's grabbed frames renumbered for the clip scorer, gaps found.

Source indices restart at every reconnect and loop, so frames enter the scorer under a
sequence number of their own, unique for the camera's life. A gap (frames the queue
dropped, a reconnect, a loop) is a break in the grabber's (segment, seq): no clip may span
it. The sequencer remembers each frame's source index and capture time until its score
comes back (or the frame is dropped unscored), so that memory is bounded by the frames in
flight. Pure: no threads, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipwatch.server.grabber import GrabbedFrame
from clipwatch.stream.sources import Frame


@dataclass(frozen=True)
class Origin:
    """Where a sequenced frame came from."""

    index: int  # the source's own frame index
    captured_at: float  # wall clock, seconds since the epoch


class FrameSequencer:
    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (segment, seq) of the last frame taken
        self._seq = 0
        self._origins: dict[int, Origin] = {}

    def take(self, item: GrabbedFrame) -> tuple[Frame, bool]:
        """The frame renumbered with its sequence number, and whether a gap precedes it.
        Frames the grabber sampled out are no gap (its seq counts only queued frames)."""
        key = (item.segment, item.seq)
        gap = self._last is not None and (key[0] != self._last[0] or key[1] != self._last[1] + 1)
        self._last = key
        self._seq += 1
        self._origins[self._seq] = Origin(item.frame.index, item.captured_at)
        return item.frame._replace(index=self._seq), gap

    def origin(self, seq: int) -> Origin:
        """The origin of a scored frame, forgotten from here on."""
        return self._origins.pop(seq)

    def forget(self, seqs: list[int]) -> None:
        """Frames dropped unscored (a gap, a frame that could not be preprocessed)."""
        for seq in seqs:
            self._origins.pop(seq, None)

    @property
    def in_flight(self) -> int:
        return len(self._origins)
