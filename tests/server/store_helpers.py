"""Alerts for the event store's tests (SQLite, PostgreSQL, the contract suite) and the
alert outbox's: a stored-alert record, and the transitions a tracker makes of scores."""

from __future__ import annotations

import numpy as np

from clipwatch.server.alerts import Alert, AlertTracker, ScoredFrame


def alert(camera="cam", started=100.0, **changes) -> Alert:
    fields = dict(camera=camera, started_at=started, start_frame=10, lowest_regularity=0.3,
                  worst_frame=12, worst_at=started + 0.2, threshold=0.5, frames=5,
                  updated_at=started + 0.5)
    fields.update(changes)
    return Alert(**fields)


def alert_transitions(tracker: AlertTracker, regularities: list[float], start: int = 0):
    """The transitions of `regularities` (one frame a second from t=100) against a 0.5
    threshold, each frame with an 8x8 image and heatmap as its evidence."""
    transitions = []
    for k, value in enumerate(regularities):
        image = np.full((8, 8, 3), k, np.uint8)
        transitions += tracker.push(ScoredFrame(start + k, 100.0 + start + k, value, 0.5,
                                                evidence=(image, np.ones((8, 8), np.float32))))
    return transitions
