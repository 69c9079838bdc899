"""Grabber: one thread per camera that reads its source into a bounded queue.

Capture never blocks on the consumer: a full queue drops its oldest frame and counts it
(Frigate's rule), so a slow scorer costs frames, never a stalled camera connection. The
grabber opens the source in its own thread (opening a stream can take seconds), paces files
and folders to their frame rate (so a recording behaves like a camera), loops them when
asked, and reconnects lost streams with exponential backoff and jitter. Its status
(connecting, live, lost, ended, stopped) says why and since when.

Each (re)open starts a new `segment`: frames of different segments never share a clip.

What a source can cost is bounded here: frames larger than `max_pixels` are downscaled
before they are queued, and a failure's reason is generic ('cannot open the source'), with
the error itself (which names paths, answers, addresses) kept as `detail` for admins and the
log: viewers must not learn what is on the server's disk or network from a camera's status.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from clipwatch.config import CameraConfig
from clipwatch.errors import ClipwatchError
from clipwatch.stream.sources import DEFAULT_FOLDER_FPS, Frame, mask_url, open_source, paced

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
BACKOFF_JITTER = (0.8, 1.2)
OPEN_FAILED = "cannot open the source"  # what viewers read; admins get the error as detail
READ_FAILED = "reading the source failed"


class Failure(str):
    """A failure's own message (a path, a server's answer: admins and the log) that carries
    the generic reason everyone else reads."""

    generic: str

    def __new__(cls, detail: str, generic: str) -> Failure:
        failure = super().__new__(cls, detail)
        failure.generic = generic
        return failure


@dataclass(frozen=True)
class CameraStatus:
    state: str  # connecting | live | lost | ended | stopped
    reason: str | None  # for everyone: never a path, an address or a server's answer
    since: float  # wall-clock seconds since the epoch
    detail: str | None = None  # the error behind a generic reason: admins and the log only

    def to_dict(self, detail: bool = False) -> dict:
        """As the API shows it; with `detail`, the error itself replaces a generic reason."""
        reason = (self.detail or self.reason) if detail else self.reason
        return {"state": self.state, "reason": reason, "since": self.since}


def fit_pixels(image: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """`image` downscaled (aspect kept, area-averaged) to at most `max_pixels` pixels."""
    height, width = image.shape[:2]
    if not max_pixels or height * width <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (height * width))
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class GrabbedFrame:
    frame: Frame
    segment: int  # which opening of the source it came from
    captured_at: float  # wall clock, seconds since the epoch (sent to viewers)
    seq: int  # the grabber's count of frames queued: a jump means the queue dropped some


class FrameSampler:
    """Keeps frames evenly at no more than `max_fps` (None: all), and measures the rate
    frames arrive at. Used when a camera is faster than scoring can follow: dropping every
    k-th frame evenly keeps clips' frames evenly spaced, where a full queue would drop
    bursts and leave a backlog."""

    def __init__(self, max_fps: float | None = None) -> None:
        self.max_fps = max_fps
        self.fps_in: float | None = None
        self._interval: float | None = None  # smoothed seconds between frames
        self._last: float | None = None
        self._next_due = 0.0

    def take(self, now: float) -> bool:
        if self._last is not None and now > self._last:
            # The mean interval, then its inverse: a burst after a stall (intervals near 0)
            # would send a mean of instantaneous rates to hundreds of frames a second.
            interval = now - self._last
            self._interval = interval if self._interval is None else \
                0.9 * self._interval + 0.1 * interval
            self.fps_in = 1.0 / self._interval
        self._last = now
        if not self.max_fps:
            return True
        if now + 1e-4 < self._next_due:
            return False
        period = 1.0 / self.max_fps
        # The schedule advances by whole periods; one that fell behind restarts at now.
        self._next_due = max(self._next_due + period, now + period * 0.5)
        return True


class Backoff:
    """Reconnect delays: 1 s doubling to 30 s, each scaled by a random jitter in 0.8-1.2
    (many cameras behind one failed switch must not reconnect in step); `reset()` once a
    connection delivered a frame. Pure apart from the random source it is handed."""

    def __init__(self, first: float = FIRST_BACKOFF_S, cap: float = MAX_BACKOFF_S) -> None:
        self.first, self.cap = first, cap
        self._base = first

    def next_delay(self, rng: random.Random) -> float:
        """The delay before the next attempt; each call doubles the one after (to `cap`)."""
        delay = self._base * rng.uniform(*BACKOFF_JITTER)
        self._base = min(self._base * 2.0, self.cap)
        return delay

    def reset(self) -> None:
        self._base = self.first


class FrameQueue:
    """A bounded queue that never blocks the producer: when full, the oldest frame goes."""

    def __init__(self, size: int) -> None:
        self._items: deque[GrabbedFrame] = deque()
        self._size = size
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, item: GrabbedFrame) -> bool:
        """Add a frame; returns False when an older frame had to be dropped for it."""
        with self._lock:
            dropped = len(self._items) >= self._size
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            return not dropped

    def drain(self) -> list[GrabbedFrame]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` in the OS too (Linux: /proc/<pid>/task/*/comm, top -H,
    ps -L; 15 bytes), so a reader stuck in a decoder call can be told from the others."""
    with contextlib.suppress(OSError, AttributeError, TypeError):  # not Linux: no name
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


class Grabber:
    """Reads one camera in a daemon thread until `stop()`."""

    def __init__(self, camera: CameraConfig, queue_size: int,
                 on_frame: Callable[[], None],
                 on_status: Callable[[CameraStatus], None],
                 rng: random.Random | None = None, max_pixels: int | None = None,
                 check_source: Callable[[str], None] | None = None,
                 on_grabbed: Callable[[Frame, int], None] | None = None) -> None:
        self.camera = camera
        # Hears of every frame read, before sampling (recording footage needs every frame,
        # whatever the scoring capacity); with the frame's segment (one per connection).
        self._on_grabbed = on_grabbed
        self.max_pixels = max_pixels  # larger frames are downscaled before they are queued
        self._check_source = check_source  # a policy checked before each open (API cameras)
        self.queue = FrameQueue(queue_size)
        self.status = CameraStatus("connecting", None, time.time())
        self.frames_in = 0
        self.last_frame_at: float | None = None  # monotonic time of the newest frame
        self.frames_sampled_out = 0  # skipped evenly to keep within the scoring capacity
        self._sampler = FrameSampler(camera.max_fps)
        self._backoff = Backoff()
        self._rng = rng or random.Random()  # the reconnect jitter's source
        self._seq = 0
        self._on_frame = on_frame  # wakes the scorer
        self._on_status = on_status
        self._stop = threading.Event()
        self._source = None
        self._thread = threading.Thread(target=self._run, name=f"grab-{camera.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop reading. A thread still inside an open or a read after `timeout` is abandoned:
        it touches nothing once that call returns (bounded by the open and read timeouts; a
        file is checked to be a regular one before any open), and no other camera waits for
        it: opens do not share a lock (see stream/sources.py)."""
        self._stop.set()
        source = self._source
        if source is not None:
            source.close()  # ends a capture's read loop after its current read
        if self._thread.ident is not None:  # stopped before it started: nothing to join
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.info("camera %s: its reader is still inside an open or a read; it ends "
                         "when that returns", self.camera.id)
        self._set_status("stopped", None)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def fps_in(self) -> float | None:
        return self._sampler.fps_in

    @property
    def sample_fps(self) -> float | None:
        return self._sampler.max_fps

    def limit_rate(self, max_fps: float | None) -> None:
        """Keep at most `max_fps` frames a second (None: the camera's own cap, if any)."""
        caps = [c for c in (max_fps, self.camera.max_fps) if c]
        self._sampler.max_fps = min(caps) if caps else None

    def check_stall(self, now: float | None = None) -> bool:
        """The watchdog, called from outside the grabber's thread: a live camera with no new
        frame for `stall_timeout_s` is marked lost even while its read() is still blocked (a
        hung server keeps a read waiting up to its timeout, and first hands over a couple of
        stale frames). The grabber marks it live again with its next frame, or reconnects
        once the read fails. Returns True when it marked the camera lost."""
        now = time.monotonic() if now is None else now
        last = self.last_frame_at
        if self.status.state != "live" or last is None:
            return False
        if now - last < self.camera.stall_timeout_s:
            return False
        self._set_status("lost", f"no frame for {now - last:.0f} s (stalled)")
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reading thread to end; True when it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set_status(self, state: str, reason: str | None, detail: str | None = None) -> None:
        if (state, reason, detail) == (self.status.state, self.status.reason,
                                       self.status.detail):
            return
        self.status = CameraStatus(state, reason, time.time(), detail)
        if state in ("lost", "ended"):
            log.warning("camera %s %s: %s", self.camera.id, state, detail or reason)
        self._on_status(self.status)

    def _run(self) -> None:
        name_os_thread(self._thread.name)
        segment = 0
        while not self._stop.is_set():
            self._set_status("connecting", None)
            segment += 1
            delivered, reason, live = self._read_once(segment)
            if self._stop.is_set():
                break
            if delivered:
                self._backoff.reset()
            if not live and delivered and self.camera.loop:
                continue  # a looping recording starts again at once
            if not live and reason is None:
                self._set_status("ended", "the recording ended")
                return
            reason = reason or "the stream stopped delivering frames"
            generic = getattr(reason, "generic", None)
            self._set_status("lost", generic or str(reason), str(reason) if generic else None)
            self._stop.wait(self._backoff.next_delay(self._rng))

    def _read_once(self, segment: int) -> tuple[bool, str | None, bool]:
        """Open the source and read it to its end: (delivered any frame, failure, is live);
        a failure that names what is behind the source is a `Failure` (generic + detail)."""
        try:
            if self._check_source is not None:
                self._check_source(self.camera.source)
            source = open_source(self.camera.source, self.camera.fps,
                                 open_timeout_s=self.camera.open_timeout_s,
                                 read_timeout_s=self.camera.read_timeout_s)
        except ClipwatchError as exc:
            return False, Failure(str(exc), OPEN_FAILED), True  # retried like a lost stream
        except Exception as exc:  # OpenCV raises cv2.error for some malformed inputs
            detail = f"cannot open {mask_url(self.camera.source)}: {exc}"
            return False, Failure(detail, OPEN_FAILED), True
        if self._stop.is_set():  # removed while the open was under way: abandon it
            source.close()
            return False, None, source.is_live
        self._source = source
        delivered, reason = False, None
        try:
            with source:
                fps = self.camera.fps or source.fps or DEFAULT_FOLDER_FPS
                # Downscaled as soon as decoded: nothing downstream (pacing, the queue, the
                # scorer, viewers) ever holds a full-size frame of a huge source.
                frames = (f._replace(image=fit_pixels(f.image, self.max_pixels))
                          for f in source)
                if not source.is_live:
                    frames = paced(frames, fps, sleep=self._stop.wait)
                for frame in frames:
                    if self._stop.is_set():
                        break
                    delivered = True
                    self.last_frame_at = time.monotonic()
                    if self.status.state != "live":  # first frame, or frames after a stall
                        self._set_status("live", None)
                    self.frames_in += 1
                    if self._on_grabbed is not None:
                        self._on_grabbed(frame, segment)
                    if not self._sampler.take(self.last_frame_at):
                        self.frames_sampled_out += 1
                        continue
                    self._seq += 1
                    self.queue.put(GrabbedFrame(frame, segment, time.time(), self._seq))
                    self._on_frame()
        except ClipwatchError as exc:
            reason = Failure(str(exc), READ_FAILED)
        except Exception as exc:  # a decoder failure must not kill the camera's thread
            log.exception("camera %s: reading failed", self.camera.id)
            reason = Failure(f"reading failed: {exc}", READ_FAILED)
        finally:
            self._source = None
        if source.is_live and reason is None:
            reason = "the stream ended or stopped answering"
        return delivered, reason, source.is_live
