"""Recording a camera's normal footage in the service, for learning its own model.

An admin asks for N minutes of a camera (POST /api/cameras/{id}/recordings), at once or
spread over hours (a schedule: one minute at a time, evenly over `spread_hours`, so busy and
quiet hours are both in it; calibrating on quiet footage alone fails on busy footage). The
camera's pipeline hands every scored frame to `feed` (the inference thread: it only
queues); one writer thread stores them with `FootageWriter` (stream/recording.py) in
`<storage>/recordings/<id>/`, beside `plan.json` (what was asked and the state).

What is left out of the footage: frames while the camera's alert (or a zone's) is open, and
the chunk in progress when one opens (its lead-in); a gap in the frame numbers (frames
dropped or sampled out) ends a chunk, so no training clip skips frames; the operator may
say the last N seconds were not normal. The size of all recordings together is bounded
(`storage.max_recording_mb`): a new recording beyond it is refused (507), one that reaches
it stops as `full`. A recording in progress carries on after a restart (`load`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clipwatch.errors import ClipwatchError
from clipwatch.jsonfile import write_json
from clipwatch.stream.preprocess import InputSpec, model_pixels
from clipwatch.stream.recording import MIN_CHUNK_FRAMES, FootageWriter, RecordingError, read_info

log = logging.getLogger(__name__)

PLAN = "plan.json"
BURST_SECONDS = 60.0  # a schedule records a minute at a time
PUBLISH_S = 1.0  # progress goes to viewers at most this often
QUEUE_FRAMES = 256  # frames waiting for the writer; beyond it they are dropped (a gap)
ACTIVE = ("recording", "waiting")
# Less room than this left in the quota (a few seconds of footage) refuses a new recording.
MIN_ROOM_BYTES = 1024 * 1024


class UnknownRecording(ClipwatchError):
    """No recording has that id."""


class RecordingConflict(ClipwatchError):
    """The camera is recording already, or the recording is in use."""


class RecordingQuota(ClipwatchError):
    """The recordings together have reached storage.max_recording_mb."""


@dataclass
class RecordingPlan:
    id: str
    camera: str
    minutes: float
    spread_hours: float | None
    fps: float
    # The camera's model does not know this scene yet, so its alerts say nothing about it:
    # keep the frames while they are open too (the operator still leaves spans out).
    keep_alerts: bool = False
    created_at: float = field(default_factory=time.time)
    state: str = "recording"  # recording, waiting, done, stopped, full, failed
    error: str | None = None
    finished_at: float | None = None

    @property
    def bursts(self) -> int:
        return max(1, math.ceil(self.minutes * 60 / BURST_SECONDS))

    def frames_due(self, now: float) -> int:
        """Frames the recording should hold by `now`: all of them at once, or one burst per
        slot of the schedule started so far."""
        wanted = round(self.minutes * 60 * self.fps)
        if not self.spread_hours:
            return wanted
        interval = self.spread_hours * 3600 / self.bursts
        started = min(self.bursts, int((now - self.created_at) // interval) + 1)
        return min(wanted, round(started * BURST_SECONDS * self.fps))

    def next_slot(self, now: float) -> float | None:
        if not self.spread_hours:
            return None
        interval = self.spread_hours * 3600 / self.bursts
        return self.created_at + (int((now - self.created_at) // interval) + 1) * interval


class ActiveRecording:
    """One recording being written: the writer, the schedule, and what to leave out."""

    def __init__(self, plan: RecordingPlan, writer: FootageWriter) -> None:
        self.plan = plan
        self.writer = writer
        self.lock = threading.Lock()  # the writer thread adds, API threads stop and drop
        self.last_index: int | None = None
        self.alerting = False
        self.published = 0.0

    def wants(self, now: float) -> bool:
        """Whether frames are kept now (a schedule between its slots keeps none)."""
        if self.plan.state not in ACTIVE:
            return False
        if self.plan.state == "waiting":
            return self.plan.frames_due(now) > self.writer.info.frames + self.writer.pending
        return True

    def add(self, index: int, captured_at: float, image: np.ndarray, alerting: bool) -> bool:
        """One frame read from the camera; True when the state changed (done, full,
        waiting, recording)."""
        plan, writer = self.plan, self.writer
        with self.lock:
            if plan.state not in ACTIVE:
                return False
            gap = self.last_index is not None and index != self.last_index + 1
            self.last_index = index
            if self._finished_chunk_due(captured_at):
                return self._set_state("waiting")
            changed = self._set_state("recording")
            if gap:
                writer.leave_out(0)
            if alerting and not plan.keep_alerts:
                if not self.alerting:  # the frames leading to the alert are suspect too
                    writer.discard()
                self.alerting = True
                writer.info.left_out += 1
                return changed
            self.alerting = False
            try:
                if not writer.add(image, captured_at):
                    self._finish("full")
                    return True
            except RecordingError as exc:
                self._finish("failed", str(exc))
                return True
            # Done once the frames asked for are kept in whole chunks (a last chunk runs on
            # until it is long enough to keep).
            if self._tail_ok() and writer.info.frames + writer.pending >= \
                    round(plan.minutes * 60 * plan.fps):
                self._finish("done")
                return True
            return changed

    def _tail_ok(self) -> bool:
        pending = self.writer.pending
        return pending == 0 or pending >= MIN_CHUNK_FRAMES

    def _finished_chunk_due(self, now: float) -> bool:
        """A schedule that holds what its slots so far asked for, the chunk in progress long
        enough to keep: it is stored and the recording waits for the next slot."""
        if not self.plan.spread_hours or not self._tail_ok():
            return False
        if self.writer.info.frames + self.writer.pending < self.plan.frames_due(now):
            return False
        if self.writer.pending:
            self.writer.flush()
        return True

    def _set_state(self, state: str) -> bool:
        if self.plan.state == state:
            return False
        self.plan.state = state
        _write_plan(self.writer.folder, self.plan)
        return True

    def _finish(self, state: str, error: str | None = None) -> None:
        try:
            self.writer.close()
        except RecordingError as exc:
            state, error = "failed", str(exc)
        self.plan.state, self.plan.error, self.plan.finished_at = state, error, time.time()
        _write_plan(self.writer.folder, self.plan)

    def stop(self) -> None:
        with self.lock:
            if self.plan.state in ACTIVE:
                self._finish("stopped")

    def drop_last(self, seconds: float) -> int:
        with self.lock:
            return self.writer.drop_since(time.time() - seconds)


def _write_plan(folder: Path, plan: RecordingPlan) -> None:
    write_json(folder / PLAN, asdict(plan))


def read_plan(folder: Path) -> RecordingPlan | None:
    try:
        return RecordingPlan(**json.loads((folder / PLAN).read_text()))
    except (OSError, ValueError, TypeError):
        return None


class RecordingManager:
    def __init__(self, storage_dir: Path, max_bytes: int | None,
                 publish: Callable[[dict[str, Any]], None]) -> None:
        self.root = Path(storage_dir) / "recordings"
        self.max_bytes = max_bytes
        self.publish = publish  # a recording's view, to viewers
        self.active: dict[str, ActiveRecording] = {}  # by camera
        self.lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self, spec_of: Callable[[str], InputSpec | None]) -> None:
        """Carry on with the recordings a restart interrupted; start the writer thread."""
        if self.root.exists():
            for folder in sorted(self.root.iterdir()):
                plan = read_plan(folder)
                if plan is None or plan.state not in ACTIVE or plan.camera in self.active:
                    continue
                spec = spec_of(plan.camera)
                if spec is None:  # the camera is gone
                    plan.state, plan.finished_at = "stopped", time.time()
                    _write_plan(folder, plan)
                    continue
                try:
                    writer = FootageWriter.reopen(folder, spec, self._room(folder))
                except RecordingError as exc:
                    log.error("recording %s cannot carry on: %s", plan.id, exc)
                    continue
                self.active[plan.camera] = ActiveRecording(plan, writer)
                log.info("recording %s of camera %s carries on (%d frames kept)", plan.id,
                         plan.camera, writer.info.frames)
        self._thread = threading.Thread(target=self._write, name="recordings", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Store what the writer has; active recordings stay active for the next start."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(10)
        with self.lock:
            for active in self.active.values():
                with active.lock:
                    active.writer.flush()

    # -- frames in (the cameras' reader threads) -----------------------------------------

    def feed(self, camera: str, index: int, captured_at: float, image: np.ndarray | None,
             alerting: bool) -> None:
        """A frame read from a camera (its reader thread): queued as the model sees it
        (small: the queue never holds full-size frames) when the camera records now."""
        active = self.active.get(camera)
        if active is None or image is None or not active.wants(captured_at):
            return
        try:
            pixels = model_pixels(image, active.writer.spec)
        except (ValueError, cv2.error):  # an unusable frame: the scorer says so too
            return
        # A full queue (the disk is slow) drops the frame: a gap, as the next frame's number
        # says, so the chunk in progress ends there.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait((camera, index, captured_at, pixels, alerting))

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            camera, index, captured_at, image, alerting = item
            active = self.active.get(camera)
            if active is None:
                continue
            changed = active.add(index, captured_at, image, alerting)
            now = time.monotonic()
            if changed or now - active.published >= PUBLISH_S:
                active.published = now
                self.publish(self._view(active.writer.folder, active))
            if active.plan.state not in ACTIVE:
                with self.lock:
                    if self.active.get(camera) is active:
                        del self.active[camera]

    # -- the API -------------------------------------------------------------------------

    def begin(self, camera: str, spec: InputSpec, fps: float, minutes: float,
              spread_hours: float | None, chunk_seconds: float = 12.0,
              keep_alerts: bool = False) -> dict[str, Any]:
        with self.lock:
            if camera in self.active:
                raise RecordingConflict(f"camera {camera!r} is recording already "
                                        f"({self.active[camera].plan.id}); stop it first")
            room = self._room(None)
            if room is not None and room < MIN_ROOM_BYTES:
                raise RecordingQuota(
                    f"the recording quota is reached ({self._used() / 1e6:.0f} MB of "
                    f"{self.max_bytes / 1e6:.0f} MB, storage.max_recording_mb); delete a "
                    "recording first")
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            rid = f"{camera}-{stamp}"
            n = 1
            while (self.root / rid).exists():
                n += 1
                rid = f"{camera}-{stamp}-{n}"
            folder = self.root / rid
            chunk = max(MIN_CHUNK_FRAMES, round(chunk_seconds * fps))
            writer = FootageWriter.create(folder, f"camera {camera}", fps, spec, chunk, room)
            plan = RecordingPlan(rid, camera, minutes, spread_hours, fps,
                                 keep_alerts=keep_alerts)
            _write_plan(folder, plan)
            active = ActiveRecording(plan, writer)
            self.active[camera] = active
        view = self._view(folder, active)
        self.publish(view)
        log.info("recording %s: %.1f min of camera %s%s", rid, minutes, camera,
                 f" over {spread_hours} h" if spread_hours else "")
        return view

    def end(self, rid: str) -> dict[str, Any]:
        folder = self.folder(rid)
        active = self._active(rid)
        if active is not None:
            active.stop()
            with self.lock:
                self.active.pop(active.plan.camera, None)
        view = self._view(folder, active)
        self.publish(view)
        return view

    def leave_out(self, rid: str, seconds: float) -> dict[str, Any]:
        """The last `seconds` were not normal: their chunks go (a finished recording too)."""
        folder = self.folder(rid)
        active = self._active(rid)
        if active is not None:
            active.drop_last(seconds)
        else:
            plan = read_plan(folder)
            writer = FootageWriter.reopen(folder, InputSpec(size=read_info(folder).size))
            writer.drop_since((plan.finished_at or time.time()) - seconds)
        view = self._view(folder, self._active(rid))
        self.publish(view)
        return view

    def remove(self, rid: str, in_use: Callable[[Path], bool]) -> None:
        folder = self.folder(rid)
        if self._active(rid) is not None:
            raise RecordingConflict(f"recording {rid} is in progress; stop it first")
        if in_use(folder):
            raise RecordingConflict(f"recording {rid} is being learned from; cancel the job "
                                    "first")
        shutil.rmtree(folder)

    def camera_removed(self, camera: str) -> None:
        with self.lock:
            active = self.active.pop(camera, None)
        if active is not None:
            active.stop()
            self.publish(self._view(active.writer.folder, active))

    def folder(self, rid: str) -> Path:
        if not re.fullmatch(r"[a-z0-9_-]{1,120}", rid) or not (self.root / rid / PLAN).exists():
            raise UnknownRecording(f"no recording {rid!r}")
        return self.root / rid

    def views(self) -> list[dict[str, Any]]:
        if not self.root.exists():
            return []
        views = []
        for folder in sorted(self.root.iterdir()):
            if (folder / PLAN).exists():
                rid = folder.name
                views.append(self._view(folder, self._active(rid)))
        return views

    def view(self, rid: str) -> dict[str, Any]:
        return self._view(self.folder(rid), self._active(rid))

    # -- helpers -------------------------------------------------------------------------

    def _active(self, rid: str) -> ActiveRecording | None:
        with self.lock:
            return next((a for a in self.active.values() if a.plan.id == rid), None)

    def _used(self, but: Path | None = None) -> int:
        used = 0
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder != but and (folder / PLAN).exists():
                    try:
                        used += read_info(folder).bytes
                    except RecordingError:
                        continue
        return used

    def _room(self, folder: Path | None) -> int | None:
        """Bytes a recording may still take (None: no quota)."""
        if self.max_bytes is None:
            return None
        return self.max_bytes - self._used(but=folder)

    def _view(self, folder: Path, active: ActiveRecording | None) -> dict[str, Any]:
        if active is not None:
            plan, info = active.plan, active.writer.info
            pending = active.writer.pending
        else:
            plan, info, pending = read_plan(folder), read_info(folder), 0
        wanted = max(1, round(plan.minutes * 60 * plan.fps))
        kept = info.frames + pending
        now = time.time()
        return {
            "id": plan.id, "camera": plan.camera, "state": plan.state,
            "minutes": plan.minutes, "spread_hours": plan.spread_hours, "fps": plan.fps,
            "keep_alerts": plan.keep_alerts,
            "seconds_kept": round(kept / plan.fps, 1), "progress": min(1.0, kept / wanted),
            "frames": info.frames, "chunks": len(info.chunks), "bytes": info.bytes,
            "left_out": info.left_out,
            "next_at": plan.next_slot(now) if plan.state == "waiting" else None,
            "created_at": plan.created_at, "finished_at": plan.finished_at,
            "error": plan.error}
