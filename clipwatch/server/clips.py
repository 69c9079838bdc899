"""ClipRecorder: a camera's event clips, from a pre-roll ring to the post-roll.

The inference thread only hands over references: each scored frame (`add`) and each alert
transition (`note`, from the camera's AlertOutbox, with the event id once the start is
stored: `stored`), put on a queue that never blocks. Everything else happens on the
recorder's own thread (`clip-<camera>`, niced, like the password checker, so scoring comes
first):
- each frame is scaled down to the clip's height and JPEG-encoded into the pre-roll ring
  (`FrameRing`, with its error map as 8 bits when the clip shows the heatmap: blending it
  in costs more than the JPEG, so only frames that go into a clip pay for it): the last
  `pre_seconds` before the newest possible alert start (an alert starts at the first of
  its `open_frames`), bounded by `buffer_mb`;
- an alert's start opens a clip (`ClipWriter`, PyAV: VP9 in WebM or H.264 in MP4) with the
  ring's frames from `pre_seconds` before it; the frames that follow are encoded as they
  come, each at its capture time (variable frame rate: the clip keeps the real timing, gaps
  included), until `post_seconds` after the alert's end, or `max_seconds` in all;
- a complete clip is renamed `<camera>/<event id>-clip.<ext>` under the store's clips folder
  and attached to its event (`EventStore.attach_clip`), whose `update` message tells viewers
  and resuming clients its clip_url.
A camera that stops (removed, disabled, the service shutting down) finishes its clips with
the frames it has; so does a source that goes quiet after an alert's end (a file that played
out): the clip closes `post_seconds` (plus a grace second) of wall time after the end.

Bounds: frames waiting for the recorder hold at most `QUEUE_BYTES` (beyond that a frame is
dropped and counted; the clip plays over the hole), the ring `buffer_mb`, an open clip only
its encoder's state (frames are encoded as they arrive, never held). Failures (disk full,
the folder gone) cost the clip, not the alert: logged once per streak and counted.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from clipwatch.config import ClipConfig
from clipwatch.model.heatmap import DEFAULT_VMAX, overlay
from clipwatch.server.event_store import PARTIAL_CLIP
from clipwatch.server.messages import alert_message

log = logging.getLogger(__name__)

QUEUE_BYTES = 64 * 1024 * 1024  # frames (decoded, full size) waiting for the recorder
GRACE_S = 1.0  # wall time past the post-roll before a clip whose frames stopped is closed
WAIT_S = 0.25  # how often the recorder looks at its deadlines when no frame comes
MAX_UNNAMED = 16  # finished clips waiting for their event id (the store refused the start)
NICENESS = 10  # the recorder's: scoring (nice 0) gets ~10x its share when both want a core
TIME_BASE = Fraction(1, 1000)  # clip timestamps in milliseconds
# Encoder settings: real-time presets, one thread each (a core is shared with scoring), a
# key frame at least every 2 s of frames so the viewer can seek.
CODECS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    # format: (codec, codec options, container options)
    "webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "33", "b": "0",
                            "lag-in-frames": "0", "g": "50", "row-mt": "0"}, {}),
    "mp4": ("libx264", {"preset": "veryfast", "crf": "26", "g": "50"},
            {"movflags": "+faststart+use_metadata_tags"}),  # index first; our start tag kept
}
MEDIA_TYPES = {".webm": "video/webm", ".mp4": "video/mp4"}

Key = tuple[str | None, float]  # an alert: (its zone, its start time)


def clip_size(shape: tuple[int, ...], height: int) -> tuple[int, int]:
    """(width, height) of a clip of frames `shape`: at most `height` tall, aspect kept, never
    scaled up, both even (the encoders' 4:2:0 sampling needs them so)."""
    frame_h, frame_w = shape[:2]
    scale = min(1.0, height / frame_h)
    return max(2, round(frame_w * scale / 2) * 2), max(2, round(frame_h * scale / 2) * 2)


def as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def scaled(image: np.ndarray, height: int) -> np.ndarray:
    """A scored frame at the clip's size (BGR). Halved by area averaging while it is twice
    the size or more (OpenCV's fast integer path), then linear for the rest: 1080p to 480
    lines in 1 ms here, where one non-integer INTER_AREA step takes 6."""
    width, height = clip_size(image.shape, height)
    frame = as_bgr(image)
    while frame.shape[0] >= 2 * height and frame.shape[1] >= 2 * width:
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2),
                           interpolation=cv2.INTER_AREA)
    if (frame.shape[1], frame.shape[0]) != (width, height):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
    return frame


def quantize(error_map: np.ndarray) -> np.ndarray:
    """An error map in 8 bits over the heatmap's colour scale (0 .. DEFAULT_VMAX, beyond
    which the heatmap shows the hottest colour anyway): a quarter of its float32 bytes."""
    return (np.clip(error_map / DEFAULT_VMAX, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def with_heatmap(frame: np.ndarray, heat: np.ndarray | None) -> np.ndarray:
    """The clip frame with the (quantized) heatmap blended over it, if there is one."""
    if heat is None:
        return frame
    return overlay(frame, heat.astype(np.float32) * np.float32(DEFAULT_VMAX / 255))


class ClipWriter:
    """One clip file: BGR frames in, each at its capture time (epoch seconds).

    The container's `creation_time` (microseconds, UTC) and `CLIPWATCH_START` tag (epoch
    seconds) are the capture time of its first frame: with a frame's timestamp in the clip
    they give its capture time."""

    def __init__(self, path: Path, fmt: str, title: str = "") -> None:
        self.path = path
        self.format = fmt
        self.title = title
        self.container: Any = None
        self.stream: Any = None
        self.size: tuple[int, int] | None = None
        self.first_at: float | None = None
        self.last_pts = -1
        self.frames = 0
        self._interval_ms = 100  # a frame's duration until the timing says otherwise

    def write(self, at: float, frame: np.ndarray) -> None:
        if self.container is None:
            self._open(at, frame)
        assert self.first_at is not None and self.size is not None
        pts = round((at - self.first_at) * 1000)
        if pts <= self.last_pts:  # the same millisecond (or a clock step back): keep order
            pts = self.last_pts + 1
        if self.last_pts >= 0:
            self._interval_ms = max(1, min(pts - self.last_pts, 1000))
        if (frame.shape[1], frame.shape[0]) != self.size:  # the source changed its size
            frame = cv2.resize(as_bgr(frame), self.size, interpolation=cv2.INTER_AREA)
        video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        video.pts, video.time_base = pts, TIME_BASE
        video.duration = self._interval_ms  # the last frame's, in the clip's duration
        for packet in self.stream.encode(video):
            self.container.mux(packet)
        self.last_pts = pts
        self.frames += 1

    def _open(self, at: float, frame: np.ndarray) -> None:
        codec, options, container_options = CODECS[self.format]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), "w", format=self.format,
                                 options=container_options)
        try:
            started = datetime.datetime.fromtimestamp(at, datetime.UTC)
            self.container.metadata["creation_time"] = started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self.container.metadata["CLIPWATCH_START"] = f"{at:.6f}"
            if self.title:
                self.container.metadata["title"] = self.title
            stream = self.container.add_stream(codec, rate=10)
            stream.width, stream.height = frame.shape[1], frame.shape[0]
            stream.pix_fmt = "yuv420p"
            stream.time_base = TIME_BASE
            stream.codec_context.time_base = TIME_BASE
            stream.codec_context.thread_count = 1
            stream.codec_context.options = dict(options)
        except BaseException:
            self.container.close()
            raise
        self.stream = stream
        self.size = (frame.shape[1], frame.shape[0])
        self.first_at = at

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last."""
        return 0.0 if self.frames == 0 else (self.last_pts + self._interval_ms) / 1000

    def close(self) -> None:
        """Flush the encoder and finish the file (its index and duration)."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self.container is not None:
                self.container.close()
        self.container = None
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


class FrameRing:
    """The newest scored frames as (capture time, JPEG, 8-bit error map or None), oldest
    first, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.frames: deque[tuple[float, bytes, np.ndarray | None]] = deque()
        self.bytes = 0
        self.shortened = 0  # frames pushed out by the byte bound (pre-rolls cut short)

    def append(self, at: float, jpeg: bytes, heat: np.ndarray | None = None) -> None:
        self.frames.append((at, jpeg, heat))
        self.bytes += _size(jpeg, heat)
        while self.bytes > self.max_bytes and len(self.frames) > 1:
            self._pop()
            self.shortened += 1

    def trim(self, keep_from: float) -> None:
        """Forget the frames captured before `keep_from`."""
        while self.frames and self.frames[0][0] < keep_from:
            self._pop()

    def since(self, at: float) -> list[tuple[float, bytes, np.ndarray | None]]:
        return [item for item in self.frames if item[0] >= at]

    def at_from_newest(self, k: int) -> float | None:
        """The capture time of the k-th newest frame (1: the newest), or None."""
        return self.frames[-k][0] if 0 < k <= len(self.frames) else None

    def _pop(self) -> None:
        _, jpeg, heat = self.frames.popleft()
        self.bytes -= _size(jpeg, heat)

    def clear(self) -> None:
        self.frames.clear()
        self.bytes = 0


def _size(jpeg: bytes, heat: np.ndarray | None) -> int:
    return len(jpeg) + (0 if heat is None else heat.nbytes)


@dataclass
class _Recording:
    key: Key
    from_at: float  # the alert's start less the pre-roll
    until_at: float  # from_at + max_seconds
    writer: ClipWriter
    ended_at: float | None = None
    deadline: float | None = None  # monotonic: close by then even if no frame comes
    event_id: int | None = None
    closed: bool = False


class ClipRecorder:
    """One camera's clips (see the module docstring). `open_frames()` is the alert rule in
    force (the ring keeps the frames an alert can start at); `publish` sends a message to
    the viewers (the hub's)."""

    def __init__(self, camera: str, config: ClipConfig, store: Any,
                 publish: Callable[[Any], None], jpeg_quality: int,
                 open_frames: Callable[[], int] = lambda: 1) -> None:
        self.camera = camera
        self.config = config
        self.store = store
        self.publish = publish
        self.quality = jpeg_quality
        self.open_frames = open_frames
        self.suffix = f".{config.format}"
        self.ring = FrameRing(int(config.buffer_mb * 1024 * 1024))
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._recording: dict[Key, _Recording] = {}
        self._ids: OrderedDict[Key, int] = OrderedDict()  # ids of starts not taken up yet
        self._unnamed: OrderedDict[Key, _Recording] = OrderedDict()  # closed, id unknown yet
        self._unattached: list[tuple[int, str, Path]] = []  # named files, to attach in order
        self._next_attach = 0.0  # monotonic: while the store refuses, try once a second
        self._failing = False
        self._stop = False
        self.frames_dropped = 0  # frames the full queue refused
        self.clips_written = 0
        self.clips_failed = 0
        self.cpu_seconds = 0.0  # the recorder thread's CPU time (scripts/clip_cost.py)
        self._thread = threading.Thread(target=self._run, name=f"clip-{camera}", daemon=True)

    # -- the inference thread's side: never waits ------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def add(self, at: float, image: np.ndarray | None, error_map: np.ndarray | None) -> None:
        """A scored frame (captured at `at`), by reference: the recorder copies nothing."""
        if image is None:
            return
        with self._cond:
            if self._stop:
                return
            if self._queued_bytes + image.nbytes > QUEUE_BYTES and self._queue:
                self.frames_dropped += 1
                return
            self._queued_bytes += image.nbytes
            self._queue.append(("frame", at, image, error_map))
            self._cond.notify()

    def note(self, transition: Any) -> None:
        """An alert transition as its tracker made it (before it is stored)."""
        alert = transition.alert
        if transition.kind == "start":
            self._put(("start", (alert.zone, alert.started_at)))
        elif transition.kind == "end":
            self._put(("end", (alert.zone, alert.started_at), alert.ended_at))

    def stored(self, alert: Any, event_id: int) -> None:
        """The alert's start is stored: its event id names the clip."""
        self._put(("id", (alert.zone, alert.started_at), event_id))

    def stop(self) -> None:
        """Finish the clips in progress with the frames there are, then end the thread."""
        self._put(("stop",))

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def recording(self) -> int:
        """Clips in progress."""
        return len(self._recording)

    @property
    def backlog(self) -> int:
        """Items (frames, transitions) waiting for the recorder's thread."""
        with self._cond:
            return len(self._queue)

    def _put(self, item: tuple[Any, ...]) -> None:
        with self._cond:
            self._queue.append(item)
            self._cond.notify()

    # -- the recorder's thread -----------------------------------------------------------------

    def _run(self) -> None:
        _lower_priority()
        stopping = False
        while not stopping:
            with self._cond:
                if not self._queue:
                    self._cond.wait(WAIT_S)
                item = self._queue.popleft() if self._queue else None
                if item is not None and item[0] == "frame":
                    self._queued_bytes -= item[2].nbytes
                if item is not None and item[0] == "stop":
                    self._stop = True  # frames added from now on are refused
            began = time.thread_time()
            try:
                if item is not None:
                    stopping = self._handle(item)
                self._expire()
                self._deliver()
            except Exception:  # a bug: never let it end the thread (the camera keeps running)
                log.exception("camera %s: the clip recorder failed", self.camera)
            self.cpu_seconds += time.thread_time() - began
        for recording in list(self._recording.values()):
            self._close(recording)
        self._deliver()
        for recording in self._unnamed.values():  # the store never took their alert's start
            recording.writer.discard()
        self._unnamed.clear()
        self.ring.clear()
        with self._cond:
            self._queue.clear()
            self._queued_bytes = 0

    def _handle(self, item: tuple[Any, ...]) -> bool:
        """One queued item; True for the last one (stop)."""
        kind = item[0]
        if kind == "frame":
            self._frame(item[1], item[2], item[3])
        elif kind == "start":
            self._start(item[1])
        elif kind == "end":
            recording = self._recording.get(item[1])
            if recording is not None:
                recording.ended_at = item[2]
                recording.deadline = time.monotonic() + self.config.post_seconds + GRACE_S
        elif kind == "id":
            self._learn_id(item[1], item[2])
        return kind == "stop"

    def _frame(self, at: float, image: np.ndarray, error_map: np.ndarray | None) -> None:
        frame = scaled(image, self.config.height)
        heat = quantize(error_map) if self.config.heatmap and error_map is not None else None
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            self.ring.append(at, jpeg.tobytes(), heat)
        # An alert starts at the first of its opening run: keep pre_seconds before that.
        run_start = self.ring.at_from_newest(max(1, self.open_frames()))
        if run_start is not None:
            self.ring.trim(run_start - self.config.pre_seconds)
        if self._recording:
            shown = with_heatmap(frame, heat)
            for recording in list(self._recording.values()):
                self._record(recording, at, shown)

    def _start(self, key: Key) -> None:
        if key in self._recording:
            return
        started_at = key[1]
        from_at = started_at - self.config.pre_seconds
        name = f".{round(started_at * 1000)}-{abs(hash(key)) % 10_000}{PARTIAL_CLIP}"
        title = f"clipwatch {self.camera}" + (f" zone {key[0]}" if key[0] else "")
        writer = ClipWriter(self.store.clips / self.camera / name, self.config.format, title)
        recording = _Recording(key, from_at - 1e-3, from_at + self.config.max_seconds, writer)
        recording.event_id = self._ids.pop(key, None)
        self._recording[key] = recording
        for at, jpeg, heat in self.ring.since(recording.from_at):  # the pre-roll
            frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if frame is not None:
                self._record(recording, at, with_heatmap(frame, heat))

    def _record(self, recording: _Recording, at: float, frame: np.ndarray) -> None:
        if recording.closed or at < recording.from_at:
            return
        past_end = recording.ended_at is not None and \
            at > recording.ended_at + self.config.post_seconds
        if past_end or at > recording.until_at:
            self._close(recording)
            return
        try:
            recording.writer.write(at, frame)
        except Exception as exc:  # av.FFmpegError, OSError: the disk, the folder
            self._failed(recording, exc)

    def _expire(self) -> None:
        """Clips whose post-roll got no frames in time (the source went quiet) close now."""
        now = time.monotonic()
        for recording in list(self._recording.values()):
            if recording.deadline is not None and now >= recording.deadline:
                self._close(recording)

    def _learn_id(self, key: Key, event_id: int) -> None:
        if key in self._recording:
            self._recording[key].event_id = event_id
        elif key in self._unnamed:
            recording = self._unnamed.pop(key)
            recording.event_id = event_id
            self._name(recording)
        else:  # its start was stored before the recorder took it up
            self._ids[key] = event_id
            while len(self._ids) > MAX_UNNAMED:
                self._ids.popitem(last=False)

    def _close(self, recording: _Recording) -> None:
        if recording.closed:
            return
        recording.closed = True
        self._recording.pop(recording.key, None)
        writer = recording.writer
        if writer.frames == 0:
            writer.discard()
            return
        try:
            writer.close()
        except Exception as exc:
            self._failed(recording, exc)
            return
        if recording.event_id is None:
            self._unnamed[recording.key] = recording  # named once the store takes the start
            while len(self._unnamed) > MAX_UNNAMED:
                _, oldest = self._unnamed.popitem(last=False)
                oldest.writer.discard()
                self.clips_failed += 1
            return
        self._name(recording)

    def _name(self, recording: _Recording) -> None:
        """Rename a finished clip after its event; it is attached by `_deliver`."""
        assert recording.event_id is not None
        relative, path = self.store.clip_file(self.camera, recording.event_id, self.suffix)
        try:
            os.replace(recording.writer.path, path)
        except OSError as exc:
            self._failed(recording, exc)
            return
        self._unattached.append((recording.event_id, relative, path))
        log.debug("camera %s: clip of event %d: %d frames, %.1f s", self.camera,
                  recording.event_id, recording.writer.frames, recording.writer.duration)

    def _deliver(self) -> None:
        """Attach the named clips to their events and tell the viewers; a store that refuses
        is tried again on the next pass."""
        if not self._stop and time.monotonic() < self._next_attach:
            return
        while self._unattached:
            event_id, relative, path = self._unattached[0]
            try:
                result = self.store.attach_clip(event_id, relative)
            except Exception as exc:  # StoreError: the database is failing; kept, retried
                self._next_attach = time.monotonic() + 1.0
                if not self._failing:
                    log.error("camera %s: cannot attach the clip of event %d (kept, retried): "
                              "%s", self.camera, event_id, exc)
                    self._failing = True
                if self._stop:  # no later pass: nothing would name the file
                    path.unlink(missing_ok=True)
                    self._unattached.pop(0)
                    self.clips_failed += 1
                    continue
                return
            self._unattached.pop(0)
            if result is None:  # the event is gone
                path.unlink(missing_ok=True)
                continue
            self.clips_written += 1
            self._working()
            seq, event = result
            self.publish(alert_message(seq, "update", event))

    def _failed(self, recording: _Recording, exc: Exception) -> None:
        recording.closed = True
        self._recording.pop(recording.key, None)
        recording.writer.discard()
        self.clips_failed += 1
        if not self._failing:
            self._failing = True
            log.error("camera %s: cannot write an event clip in %s: %s (the alert is kept "
                      "without it)", self.camera, self.store.clips,
                      getattr(exc, "strerror", None) or exc)

    def _working(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("camera %s: event clips are written again (%d failed so far)",
                        self.camera, self.clips_failed)


def _lower_priority() -> None:
    """Lower this thread's priority (on Linux `setpriority` on a thread id is per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
