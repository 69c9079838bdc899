"""AlertTracker: per-camera alert state from the stream of regularity scores.

An alert opens after `open_frames` consecutive frames below the threshold (one noisy frame is
not an alert) and starts at the first of them; it closes after `close_frames` consecutive
frames at or above threshold + hysteresis (so a score hovering at the threshold does not
flap). While open it tracks its lowest regularity and that frame (for the snapshot and
heatmap), and asks for an update message at most every `update_seconds`.

One event, one alert: once calm, the alert's end is held back for `merge_seconds`. If the
score opens again within that gap (`open_frames` below the threshold, as for a new alert),
the same alert continues; otherwise it ends, dated when it closed (close_frames calm).

Pure logic with no I/O: the pipeline stores each transition, then broadcasts it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from clipwatch.config import AlertConfig


@dataclass(frozen=True)
class ScoredFrame:
    """What the tracker needs of one scored frame; `evidence` is kept for the worst frame."""

    frame: int
    at: float  # wall-clock capture time, seconds since the epoch
    regularity: float
    threshold: float
    evidence: Any = None  # (image, error map) in the service; opaque here


@dataclass(frozen=True)
class Alert:
    camera: str
    started_at: float
    start_frame: int
    lowest_regularity: float
    worst_frame: int
    worst_at: float
    threshold: float
    frames: int  # frames scored while open (including the opening run)
    updated_at: float
    ended_at: float | None = None
    id: int | None = None  # the event store's id, set once stored
    zone: str | None = None  # the camera zone whose score raised it (None: the whole frame)
    model: str | None = None  # the model the camera ran (its file name), for the history


@dataclass(frozen=True)
class Transition:
    kind: str  # start | update | end
    alert: Alert
    worst: Any = None  # the worst frame's evidence, when it changed since the last transition


class AlertTracker:
    def __init__(self, camera: str, rules: AlertConfig, zone: str | None = None,
                 model: str | None = None) -> None:
        self.camera = camera
        self.rules = rules
        self.zone = zone
        self.model = model
        self.alert: Alert | None = None
        self._run: list[ScoredFrame] = []  # consecutive frames below threshold, before opening
        self._calm = 0  # consecutive calm frames while open
        self._worst: ScoredFrame | None = None
        self._worst_dirty = False
        self._last_update = 0.0
        self._quiet_since: ScoredFrame | None = None  # calm, ending unless it opens again

    @property
    def is_open(self) -> bool:
        return self.alert is not None

    def set_id(self, alert_id: int) -> None:
        if self.alert is not None:
            self.alert = replace(self.alert, id=alert_id)

    def push(self, scored: ScoredFrame) -> list[Transition]:
        below = scored.regularity < scored.threshold
        if self.alert is None:
            return self._while_closed(scored, below)
        if self._quiet_since is not None:
            return self._while_ending(scored, below)
        return self._while_open(scored, below)

    def _while_ending(self, scored: ScoredFrame, below: bool) -> list[Transition]:
        """Calm, within the merge gap: a new opening run continues the alert."""
        assert self.alert is not None and self._quiet_since is not None
        self._run = self._run + [scored] if below else []
        if len(self._run) >= self.rules.open_frames:
            run, self._run, self._quiet_since, self._calm = self._run, [], None, 0
            return [t for frame in run for t in self._while_open(frame, True)]
        if scored.at - self._quiet_since.at >= self.rules.merge_seconds:
            self._run = []
            return [self._end(self._quiet_since.at)]
        return []

    def _while_closed(self, scored: ScoredFrame, below: bool) -> list[Transition]:
        if not below:
            self._run.clear()
            return []
        self._run.append(scored)
        if len(self._run) < self.rules.open_frames:
            return []
        first = self._run[0]
        worst = min(self._run, key=lambda s: s.regularity)
        self._run = []
        self._worst, self._calm = worst, 0
        self._last_update = scored.at
        self.alert = Alert(
            camera=self.camera, started_at=first.at, start_frame=first.frame,
            lowest_regularity=worst.regularity, worst_frame=worst.frame, worst_at=worst.at,
            threshold=scored.threshold, frames=self.rules.open_frames, updated_at=scored.at,
            zone=self.zone, model=self.model)
        return [Transition("start", self.alert, worst.evidence)]

    def _while_open(self, scored: ScoredFrame, below: bool) -> list[Transition]:
        assert self.alert is not None
        alert = replace(self.alert, frames=self.alert.frames + 1, updated_at=scored.at,
                        threshold=scored.threshold)
        if scored.regularity < alert.lowest_regularity:
            alert = replace(alert, lowest_regularity=scored.regularity, worst_frame=scored.frame,
                            worst_at=scored.at)
            self._worst, self._worst_dirty = scored, True
        self.alert = alert
        calm = not below and scored.regularity >= scored.threshold + self.rules.hysteresis
        self._calm = self._calm + 1 if calm else 0
        if self._calm >= self.rules.close_frames:
            if self.rules.merge_seconds <= 0:
                return [self._end(scored.at)]
            self._quiet_since = scored  # ends after the gap unless it opens again
            return []
        if scored.at - self._last_update >= self.rules.update_seconds:
            self._last_update = scored.at
            return [self._transition("update")]
        return []

    def close(self, at: float) -> list[Transition]:
        """End an open alert now (camera stopped, removed, or the service shutting down)."""
        self._run.clear()
        if self._quiet_since is not None:
            at = self._quiet_since.at  # it had already ended; only the gap was left
        return [self._end(at)] if self.alert is not None else []

    def _end(self, at: float) -> Transition:
        assert self.alert is not None
        self.alert = replace(self.alert, ended_at=at, updated_at=at)
        transition = self._transition("end")
        self.alert, self._worst, self._calm, self._quiet_since = None, None, 0, None
        return transition

    def _transition(self, kind: str) -> Transition:
        assert self.alert is not None
        worst = self._worst.evidence if self._worst_dirty and self._worst else None
        self._worst_dirty = False
        return Transition(kind, self.alert, worst)
