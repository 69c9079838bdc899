"""AlertOutbox: a camera's alert transitions, stored first, then broadcast; never lost.

A transition the store refuses (disk full, folder gone) waits, in order, and is retried on
every later call; nothing is broadcast before it is stored. The event id of an alert is
known only once its start is stored, so updates and ends queued meanwhile get it then (a
bounded map from an alert's start time to its event id).

A failing streak is logged once when it starts and once when it ends, with how many tries
failed: never a line (or a traceback) per try. Anything else that goes wrong storing a
transition (a bug) is held and retried the same way, so it never reaches the inference loop.
Images the store could not write (its snapshot folder broken) ride along with the alert's
next transition, so an alert stored without them gets them once the folder works again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from clipwatch.server.alerts import Transition
from clipwatch.server.event_store import StoreError
from clipwatch.server.jpeg import encode_jpeg, overlay_jpeg
from clipwatch.server.messages import alert_message

log = logging.getLogger(__name__)

MAX_UNSTORED = 10_000  # alert messages a camera holds while the store refuses them
MAX_EVENT_IDS = 256  # alerts whose event id is remembered for transitions stored late
MAX_PENDING_IMAGES = 4  # alerts whose images wait for the snapshot folder to work again


class AlertOutbox:
    """`store.record(kind, alert, images)` first, then `publish(message)`.

    `on_stored(started_at, event_id)` tells the alert tracker its alert's id; `on_started`
    counts a stored alert (metrics); `clips` (the camera's ClipRecorder, clips.py) hears of
    each transition as it is queued and of each start's event id once it is stored."""

    def __init__(self, camera: str, store: Any, publish: Callable[[dict], None],
                 jpeg_quality: int, on_stored: Callable[[float, int], None] = lambda *_: None,
                 on_started: Callable[[], None] = lambda: None,
                 max_unstored: int = MAX_UNSTORED, clips: Any = None) -> None:
        self.camera = camera
        self.store = store
        self.publish = publish
        self.quality = jpeg_quality
        self.on_stored = on_stored
        self.on_started = on_started
        self.clips = clips
        self.max_unstored = max_unstored
        self._unstored: list[tuple[Transition, dict[str, bytes] | None]] = []
        self._event_ids: OrderedDict[float, int] = OrderedDict()
        self._pending_images: OrderedDict[int, dict[str, bytes]] = OrderedDict()
        self._failures = 0  # tries refused in the current failing streak
        self._failing_since = 0.0
        self.dropped = 0  # only past max_unstored, logged: the one way an alert is lost

    @property
    def waiting(self) -> int:
        return len(self._unstored)

    def send(self, transitions: list[Transition]) -> None:
        """Queue transitions (with their evidence as JPEGs) and deliver what the store takes."""
        for transition in transitions:
            if len(self._unstored) >= self.max_unstored:
                log.error("camera %s: %d alert messages wait for the store; dropping the "
                          "oldest", self.camera, len(self._unstored))
                self._unstored.pop(0)
                self.dropped += 1
            self._unstored.append((transition, self._images(transition)))
            if self.clips is not None:
                self.clips.note(transition)
        self.retry()

    def _images(self, transition: Transition) -> dict[str, bytes] | None:
        if transition.worst is None:
            return None
        image, error_map = transition.worst
        images = {"snapshot": encode_jpeg(image, self.quality)}
        if error_map is not None:
            images["heatmap"] = overlay_jpeg(image, error_map, self.quality)
        return images

    def retry(self) -> None:
        """Deliver the waiting transitions in order, up to the first the store refuses."""
        while self._unstored:
            transition, images = self._unstored[0]
            alert = transition.alert
            if alert.id is None and transition.kind != "start":
                # Its start was stored late (it waited too): the event id is known by now.
                alert = replace(alert, id=self._event_ids.get(alert.started_at))
            images = self._with_pending(alert.id, images)
            try:
                seq, event = self.store.record(transition.kind, alert, images)
            except Exception as exc:  # StoreError: the disk; anything else: a bug, held too
                self._refused(exc)
                return
            self._unstored.pop(0)
            self._stored()
            self._keep_unwritten(event, images)
            if transition.kind == "start":
                self._remember(alert.started_at, event["id"])
                self.on_stored(alert.started_at, event["id"])
                if self.clips is not None:
                    self.clips.stored(alert, event["id"])
                self.on_started()
            self.publish(alert_message(seq, transition.kind, event))

    def _refused(self, exc: Exception) -> None:
        """Log the first refusal of a streak (with the traceback only for a bug), count the
        rest."""
        self._failures += 1
        if self._failures > 1:
            return
        self._failing_since = time.monotonic()
        if isinstance(exc, StoreError):
            log.error("%s (kept; retried until the store takes it)", exc)
        else:
            log.error("camera %s: storing an alert failed (kept; retried until it is stored)",
                      self.camera, exc_info=exc)

    def _stored(self) -> None:
        if self._failures:
            log.warning("camera %s: the store takes alerts again, after %d refused tries in "
                        "%.0f s", self.camera, self._failures,
                        time.monotonic() - self._failing_since)
            self._failures = 0

    def _with_pending(self, event_id: int | None,
                      images: dict[str, bytes] | None) -> dict[str, bytes] | None:
        """The images this transition carries, else those its alert could not store yet."""
        pending = self._pending_images.get(event_id) if event_id is not None else None
        return images or pending

    def _keep_unwritten(self, event: dict[str, Any], images: dict[str, bytes] | None) -> None:
        """Keep the images the store could not write for the alert's next transition."""
        event_id = event["id"]
        missing = {name: data for name, data in (images or {}).items()
                   if event.get(f"{name}_url") is None}
        if not missing:
            self._pending_images.pop(event_id, None)
            return
        self._pending_images[event_id] = missing
        self._pending_images.move_to_end(event_id)
        while len(self._pending_images) > MAX_PENDING_IMAGES:
            self._pending_images.popitem(last=False)

    def _remember(self, started_at: float, event_id: int) -> None:
        self._event_ids[started_at] = event_id
        while len(self._event_ids) > MAX_EVENT_IDS:
            self._event_ids.popitem(last=False)
