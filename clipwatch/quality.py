"""Detection quality beyond frame AUC: where the heatmap points, and the alerts raised.

- Localization: the viewer's error map (227x227, the per-pixel squared error of the newest
  frame) smoothed with a 15x15 box filter; its maximum counts when a ground-truth pixel lies
  within 7 pixels (Euclidean) of it, masks resized to the input size (nearest neighbour).
  Frames with an empty mask are left out. The pixel AUC is over the same frames, on the
  pixels of a 2-pixel grid (every other row and column: a quarter of them, deterministic),
  which bounds its memory (about 50 MB for Ped2's 1020 test frames).
- Alerts: each clip's live regularity replayed through the service's own `AlertTracker`
  (default rules, the calibration's threshold, frame times from indices at 10 fps); an event
  is a contiguous abnormal interval of the frame-level ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from clipwatch.config import AlertConfig
from clipwatch.model.metrics import has_both_classes
from clipwatch.server.alerts import AlertTracker, ScoredFrame

PEAK_BOX = 15  # box filter side (pixels of the model's input)
PEAK_RADIUS = 7  # a ground-truth pixel this near the peak counts
PIXEL_GRID = 2  # the pixel AUC reads every PIXEL_GRID-th row and column
FPS = 10.0  # UCSD frame rate: frame times from frame indices


def peak_in_mask(error_map: np.ndarray, mask: np.ndarray) -> bool | None:
    """Whether the smoothed error map's maximum lies within PEAK_RADIUS of the mask;
    None for an empty mask (a frame left out)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    smooth = cv2.boxFilter(error_map.astype(np.float32, copy=False), -1, (PEAK_BOX, PEAK_BOX))
    py, px = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return bool(((ys - py) ** 2 + (xs - px) ** 2).min() <= PEAK_RADIUS ** 2)


@dataclass
class Localization:
    """Running tally over the frames with a non-empty mask."""

    hits: int = 0
    frames: int = 0
    _values: list[np.ndarray] = field(default_factory=list)
    _labels: list[np.ndarray] = field(default_factory=list)

    def add(self, error_map: np.ndarray, mask: np.ndarray) -> None:
        hit = peak_in_mask(error_map, mask)
        if hit is None:
            return
        self.frames += 1
        self.hits += hit
        self._values.append(error_map[::PIXEL_GRID, ::PIXEL_GRID].astype(np.float32).ravel())
        self._labels.append(mask[::PIXEL_GRID, ::PIXEL_GRID].ravel())

    def to_dict(self) -> dict:
        from sklearn.metrics import roc_auc_score

        pixel_auc = None
        if self._values:
            labels = np.concatenate(self._labels)
            if has_both_classes(labels):
                pixel_auc = round(float(roc_auc_score(labels, np.concatenate(self._values))), 4)
        return {"peak_in_mask": round(self.hits / self.frames, 4) if self.frames else None,
                "pixel_auc": pixel_auc, "frames": self.frames,
                "pixel_grid": PIXEL_GRID, "peak_box": PEAK_BOX, "peak_radius": PEAK_RADIUS}


def intervals(abnormal: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous True runs of a per-frame series as (first, last) positions, inclusive."""
    padded = np.concatenate(([False], np.asarray(abnormal, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def alert_spans(live: np.ndarray, threshold: float, rules: AlertConfig | None = None,
                camera: str = "eval") -> list[tuple[int, int]]:
    """The alerts the service raises on one clip's live regularity (NaN: no verdict, as the
    pipeline skips it), as (start, end) positions, inclusive, the end where the alert closed
    (a merge gap delays the message, not the end); one still open at the end of the clip
    ends at its last frame."""
    tracker = AlertTracker(camera, rules or AlertConfig())
    spans, last = [], len(live) - 1
    for i, value in enumerate(live):
        if np.isnan(value):
            continue
        for t in tracker.push(ScoredFrame(i, i / FPS, float(value), threshold)):
            if t.kind == "end":
                spans.append((t.alert.start_frame, round(t.alert.ended_at * FPS)))
    for t in tracker.close(last / FPS):
        spans.append((t.alert.start_frame, round(t.alert.ended_at * FPS)))
    return spans


@dataclass
class AlertTally:
    events: int = 0
    detected: int = 0
    alerts: int = 0
    alerts_on_events: int = 0
    false_alerts: int = 0
    delays: list[int] = field(default_factory=list)

    def add(self, live: np.ndarray, abnormal: np.ndarray, threshold: float,
            rules: AlertConfig | None = None) -> None:
        """One clip: its live regularity and frame-level ground truth, position for position."""
        spans = alert_spans(live, threshold, rules)
        events = intervals(abnormal)
        self.events += len(events)
        self.alerts += len(spans)
        for a, b in spans:
            if not abnormal[a:b + 1].any():
                self.false_alerts += 1
        for s, e in events:
            starts = [a for a, b in spans if a <= e and b >= s]
            if starts:
                self.detected += 1
                self.alerts_on_events += len(starts)
                self.delays.append(max(0, min(starts) - s))

    def to_dict(self) -> dict:
        return {"events": self.events, "events_detected": self.detected,
                "alerts": self.alerts,
                "alerts_per_detected_event": round(self.alerts_on_events / self.detected, 4)
                if self.detected else None,
                "false_alerts": self.false_alerts,
                "median_delay_frames": float(np.median(self.delays)) if self.delays else None}
