"""A camera's masks and zones on the service side: scorer settings and the zones' alerts.

The scorer (model/clip_scorer.py) does the scoring: masked pixels count nowhere, and each
zone has its own e(t) and live score. Here each zone gets its own `AlertTracker` (its name
on the alerts it raises) and its own `AlertOutbox` (an outbox maps an alert's start time to
its event id, and a zone's alert may start on the same frame as the camera's), beside the
camera's own tracker, which the whole-frame score still drives.

A zone's threshold: its own, else the camera's (`threshold`), else the calibration its
live score runs with (its own learned baseline, or the camera's calibration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from clipwatch.config import AlertConfig, CameraConfig, CameraZone
from clipwatch.model.clip_scorer import ClipScorer, FrameScore, ScorerSettings
from clipwatch.model.regions import ZoneShape
from clipwatch.server.alerts import AlertTracker, ScoredFrame
from clipwatch.server.outbox import AlertOutbox


def with_regions(settings: ScorerSettings, camera: CameraConfig) -> ScorerSettings:
    """The scorer settings with the camera's masks and zones."""
    return replace(settings,
                   masks=tuple(tuple((int(x), int(y)) for x, y in mask) for mask in camera.masks),
                   zones=tuple(ZoneShape(z.name, tuple((int(x), int(y)) for x, y in z.polygon))
                               for z in camera.zones))


@dataclass
class _Zone:
    config: CameraZone
    tracker: AlertTracker
    outbox: AlertOutbox


def _id_setter(tracker: AlertTracker) -> Callable[[float, int], None]:
    """The outbox's `on_stored`: the tracker's alert learns its event id once stored."""
    def stored(started_at: float, event_id: int) -> None:
        alert = tracker.alert
        if alert is not None and alert.started_at == started_at:
            tracker.set_id(event_id)
    return stored


class ZoneAlerts:
    """The alerts of one camera's zones (none: every call is a no-op). `clips`, the
    camera's ClipRecorder (clips.py), records their event clips as the camera's own."""

    def __init__(self, camera: CameraConfig, rules: AlertConfig, store: Any,
                 publish: Callable[[Any], None], jpeg_quality: int,
                 on_started: Callable[[], None], model: str | None = None,
                 clips: Any = None) -> None:
        self.camera = camera
        self.zones: list[_Zone] = []
        for config in camera.zones:
            tracker = AlertTracker(camera.id, rules, zone=config.name, model=model)
            outbox = AlertOutbox(camera.id, store, publish, jpeg_quality,
                                 on_stored=_id_setter(tracker), on_started=on_started,
                                 clips=clips)
            self.zones.append(_Zone(config, tracker, outbox))

    @property
    def is_open(self) -> bool:
        return any(z.tracker.is_open for z in self.zones)

    @property
    def waiting(self) -> int:
        return sum(z.outbox.waiting for z in self.zones)

    def threshold(self, zone: CameraZone, scorer: ClipScorer) -> float | None:
        if zone.threshold is not None:
            return zone.threshold
        if self.camera.threshold is not None:
            return self.camera.threshold
        calibration = scorer.zone_live[zone.name].calibration
        return calibration.threshold if calibration else None

    def push(self, score: FrameScore, frame: int, at: float, scorer: ClipScorer) -> None:
        """One scored frame (`frame`, captured `at`) through every zone's tracker."""
        for zone, zone_score in zip(self.zones, score.zones, strict=True):
            threshold = self.threshold(zone.config, scorer)
            if zone_score.regularity is None or threshold is None:
                continue
            zone.outbox.send(zone.tracker.push(ScoredFrame(
                frame, at, zone_score.regularity, threshold,
                evidence=(score.image, score.error_map))))

    def retry(self) -> None:
        for zone in self.zones:
            if zone.outbox.waiting:
                zone.outbox.retry()

    def close(self, at: float) -> None:
        """End the zones' open alerts (the camera stopped, or its recording ended)."""
        for zone in self.zones:
            zone.outbox.send(zone.tracker.close(at))

    def regularities(self, score: FrameScore) -> dict[str, float | None]:
        """Each zone's regularity for the score message."""
        return {z.name: z.regularity for z in score.zones}
