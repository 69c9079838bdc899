"""Frame sources: everything that turns a folder, a video file, a network stream or a webcam
into one iterator of `Frame`s, plus `open_source` (which picks the kind from a user's string)
and `paced` (replay at the source's own speed).

This module owns opening, decoding and naming sources, and turning every failure to do so into
a one-line `SourceError`. It does not preprocess frames, buffer clips or reconnect lost
streams. It imports only numpy, OpenCV and the standard library, so it runs wherever the
server does.
"""

from __future__ import annotations

import math
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

import cv2
import numpy as np

from clipwatch.errors import SourceError
from clipwatch.stream.local_files import (
    decoder_path,
    open_regular,
    read_regular,
    special_file_problem,
)

# Extensions OpenCV decodes in every standard build; compared lower-cased because the
# official UCSD tarball and many camera exports use upper-case names (.TIF, .JPG).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}
)
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
DEFAULT_FOLDER_FPS = 10.0  # the UCSD recording rate; folders carry no rate of their own
FALLBACK_VIDEO_FPS = 25.0
_RTSP_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# FFmpeg's own log lines go straight to stderr, unformatted, and some name the stream's URL
# with its password; every failure is reported by our one-line SourceError instead.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# OpenCV's FFmpeg backend holds one process-wide lock across every open (avformat_open_input
# and the stream probe): one camera whose open hangs (a stream that accepts and never
# answers holds it up to its open timeout; a FIFO held it for good) kept every other file and
# stream camera from opening. FFmpeg's own open is thread-safe (no global state since 4.0, and
# the wheel's is 8.x), so the lock only serialises; OpenCV reads this at each open.
os.environ.setdefault("OPENCV_FFMPEG_IS_THREAD_SAFE", "1")


class Frame(NamedTuple):
    """One decoded frame. `image` is what OpenCV decodes: HxWx3 BGR uint8."""

    index: int  # 0-based position in the source
    timestamp: float  # seconds: media time (index/fps) for files, since open for live sources
    image: np.ndarray


def mask_url(url: str) -> str:
    """`url` with any password replaced by ***, so names and messages can be logged safely.

    Works on the text rather than through urllib's parsed fields: those raise on a malformed
    port, and a message about a bad URL must never itself fail.
    """
    match = _SCHEME_RE.match(url)
    if not match:
        return url
    rest = url[match.end():]
    # The authority ends at the first / ? or #; the userinfo ends at its last @ (a password
    # may itself contain @).
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    tail = rest[end:]
    if not at:
        # A password with an unescaped / in it (users type them) ends the authority early;
        # mask up to the last @ before any query instead: hiding too much beats leaking.
        before_query = re.split(r"[?#]", rest, maxsplit=1)[0]
        userinfo, at, host = before_query.rpartition("@")
        tail = rest[len(before_query):]
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{match.group(0)}{user}:***@{host}{tail}"


def _natural_key(name: str) -> tuple[tuple[object, ...], str]:
    """Sort key that orders digit runs by value: 2.png < 10.png, 001.tif < 010.tif.

    re.split with a capturing group alternates text, number, text, ..., so every position
    holds the same type in every key and tuples compare without a TypeError. The raw name
    breaks ties between equal values written differently (1.png vs 001.png).
    """
    parts = re.split(r"(\d+)", name.lower())
    key = tuple(int(p) if i % 2 else p for i, p in enumerate(parts))
    return key, name


def _check_fps(fps: float, what: str) -> float:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise SourceError(f"{what}: fps must be a positive number, got {fps!r}")
    return float(fps)


class FrameSource(ABC):
    """A source of frames; iterate it for `Frame`s, close it (or use `with`) when done."""

    name: str
    fps: float | None
    frame_count: int | None

    def __init__(self, name: str, fps: float | None, frame_count: int | None) -> None:
        self.name = name
        self.fps = fps
        self.frame_count = frame_count
        self._closed = False

    @property
    def is_live(self) -> bool:
        """True for network streams and webcams: no end, no seeking, wall-clock timestamps."""
        return False

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise SourceError(f"{self.name} is closed")
        return self._frames()

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield the frames; called by __iter__ once the source is known to be open."""

    def close(self) -> None:
        """Release what the source holds; calling it again does nothing."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FolderSource(FrameSource):
    """A folder of image files, one frame each, in natural order (the UCSD datasets' form)."""

    def __init__(self, path: str | os.PathLike[str], fps: float = DEFAULT_FOLDER_FPS) -> None:
        folder = Path(path)
        if not folder.exists():
            raise SourceError(f"{folder} does not exist")
        if not folder.is_dir():
            raise SourceError(f"{folder} is not a folder of frames")
        fps = _check_fps(fps, str(folder))
        try:
            entries = list(folder.iterdir())
        except OSError as exc:
            raise SourceError(f"cannot list {folder}: {exc.strerror or exc}") from None
        # Dotfiles are skipped because macOS leaves `._001.tif` resource forks beside real
        # frames (the official UCSD tarball has some); they carry an image extension but do
        # not decode.
        self.files: tuple[Path, ...] = tuple(
            sorted(
                (
                    p
                    for p in entries
                    if not p.name.startswith(".")
                    and p.suffix.lower() in IMAGE_EXTENSIONS
                    and p.is_file()
                ),
                key=lambda p: _natural_key(p.name),
            )
        )
        if not self.files:
            raise SourceError(f"no frames in {folder} (looked for {_extension_list()})")
        super().__init__(str(folder), fps, len(self.files))
        self.path = folder

    def _frames(self) -> Iterator[Frame]:
        assert self.fps is not None
        for index, file in enumerate(self.files):
            yield Frame(index, index / self.fps, _read_image(file))


def _extension_list() -> str:
    return " ".join(sorted(IMAGE_EXTENSIONS))


def _read_image(file: Path) -> np.ndarray:
    # Bytes + imdecode instead of imread: imread returns None for every kind of failure (and
    # cannot open non-ASCII paths on Windows), while this keeps a missing or unreadable file
    # apart from one that is not an image. read_regular refuses a frame swapped for a FIFO.
    data = np.frombuffer(read_regular(file), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"cannot decode frame {file}: not a readable image")
    return image


class _CaptureSource(FrameSource):
    """The shared life cycle of sources read through cv2.VideoCapture.

    The capture is opened in the constructor so a bad path or URL fails where the user named
    it, not later inside a pipeline thread. Iterating consumes it; iterating again reopens.
    close() from another thread ends a running iteration after its current read, and that
    iteration releases the capture itself: releasing it under a blocked read() is unsafe.
    """

    def __init__(self, name: str) -> None:
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None  # a frame read early, still to be yielded
        self._opened_at = 0.0
        super().__init__(name, None, None)
        self._open()

    @abstractmethod
    def _make_capture(self) -> cv2.VideoCapture:
        """A new cv2.VideoCapture for this source (not yet checked)."""

    @abstractmethod
    def _open_error(self) -> SourceError:
        """The error raised when the capture cannot be opened."""

    def _open(self) -> None:
        cap = self._make_capture()
        if not cap.isOpened():
            cap.release()
            raise self._open_error()
        self._cap = cap
        self._pending = None
        self._opened_at = time.monotonic()

    def _timestamp(self, index: int) -> float:
        if self.is_live:
            return time.monotonic() - self._opened_at
        assert self.fps is not None
        return index / self.fps

    def _frames(self) -> Iterator[Frame]:
        if self._cap is None:  # consumed by an earlier iteration
            self._open()
        cap, pending = self._cap, self._pending
        self._cap, self._pending = None, None  # this iteration owns the capture now
        assert cap is not None
        try:
            index = 0
            if pending is not None:
                yield Frame(0, self._timestamp(0), pending)
                index = 1
            while True:
                ok, image = cap.read()
                # A failed read is the end of a file, or a lost stream; reconnecting is the
                # camera pipeline's job, so the iteration simply ends here.
                if not ok or image is None or self._closed:
                    return
                yield Frame(index, self._timestamp(index), image)
                index += 1
        finally:
            cap.release()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None
        super().close()


class VideoFileSource(_CaptureSource):
    """A video file (anything FFmpeg demuxes: avi, mp4, mkv, ...), read in media time."""

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"{self.path} does not exist")
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a folder, not a video file")
        self._fps_override = None if fps is None else _check_fps(fps, str(self.path))
        super().__init__(str(self.path))

    def _make_capture(self) -> cv2.VideoCapture:
        # FFmpeg by name rather than CAP_ANY: the fallback image-sequence backend reads a '%'
        # in a file name as a printf pattern. FFmpeg gets the regular file checked and held
        # open here (/proc/self/fd/N), never a FIFO or device swapped in after the check.
        fd = open_regular(self.path)
        try:
            return cv2.VideoCapture(decoder_path(fd, self.path), cv2.CAP_FFMPEG)
        finally:
            os.close(fd)

    def _open_error(self) -> SourceError:
        return SourceError(f"{self.path} is not a readable video")

    def _open(self) -> None:
        super()._open()
        assert self._cap is not None
        # Read the first frame now: some files open (a valid header) and then decode nothing.
        ok, first = self._cap.read()
        if not ok or first is None:
            self.close()
            raise self._open_error()
        self._pending = first
        self.fps = self._fps_override or _nominal_fps(self._cap)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        # Containers without an index report 0 or a negative count: unknown, not empty.
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None


def _nominal_fps(cap: cv2.VideoCapture) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    # 0 and NaN mean "not stored"; rates above 1000 are FFmpeg reporting a time base, not a
    # frame rate. Either way a common camera rate is a better guess than a division by zero.
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        return FALLBACK_VIDEO_FPS
    return float(fps)


class StreamSource(_CaptureSource):
    """A network stream (RTSP, RTSPS, HTTP(S): MJPEG, HLS, a file served over HTTP)."""

    def __init__(
        self, url: str, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0
    ) -> None:
        self.url = url
        scheme = _scheme(url)
        if scheme not in STREAM_SCHEMES:
            raise SourceError(
                f"{mask_url(url)}: unsupported scheme {scheme or '(none)'!r} "
                f"(use one of {', '.join(sorted(STREAM_SCHEMES))})"
            )
        for label, value in (("open", open_timeout_s), ("read", read_timeout_s)):
            if not (math.isfinite(value) and value > 0):
                raise SourceError(f"{mask_url(url)}: {label} timeout must be positive")
        if scheme.startswith("rtsp"):
            # RTSP over UDP loses packets (smeared frames) behind NAT and on busy networks, and
            # many cameras are only reachable over TCP. OpenCV's FFmpeg backend reads this
            # variable at every open; a value the user set is left alone.
            # A small probe makes the first frame arrive in about 0.65 s instead of 3 s
            # (measured against GStreamer's RTSP server).
            os.environ.setdefault(_RTSP_OPTIONS_ENV,
                                  "rtsp_transport;tcp|analyzeduration;500000|probesize;32768")
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        super().__init__(mask_url(url))

    @property
    def is_live(self) -> bool:
        return True

    def _make_capture(self) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _open_error(self) -> SourceError:
        return SourceError(
            f"cannot open stream {self.name} (unreachable, refused, or not a video stream "
            f"within {self._open_timeout_s:g} s)"
        )

    def _open(self) -> None:
        super()._open()
        assert self._cap is not None
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None
        self.frame_count = None  # a stream has no known end, whatever the server says


class WebcamSource(_CaptureSource):
    """A local camera by its OpenCV index (0 is the first camera)."""

    def __init__(self, index: int) -> None:
        if index < 0:
            raise SourceError(f"webcam index must be 0 or more, got {index}")
        self.index = index
        super().__init__(f"webcam {index}")

    @property
    def is_live(self) -> bool:
        return True

    def _make_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(self.index)

    def _open_error(self) -> SourceError:
        return SourceError(f"cannot open webcam {self.index} (no such camera, or it is busy)")

    def _open(self) -> None:
        super()._open()
        assert self._cap is not None
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None


def _scheme(spec: str) -> str | None:
    match = _SCHEME_RE.match(spec)
    return match.group(1).lower() if match else None


def source_kind(spec: str) -> str:
    """What a camera source is, for allow-lists: its URL scheme, 'webcam' or 'file'."""
    if re.fullmatch(r"\d+", spec, flags=re.ASCII):
        return "webcam"
    return _scheme(spec) or "file"


def open_source(spec: str | os.PathLike[str], fps: float | None = None, *,
                open_timeout_s: float = 10.0, read_timeout_s: float = 10.0) -> FrameSource:
    """Open what the user named: digits -> webcam, rtsp/http URL -> stream, folder -> frames,
    file -> video. `fps` overrides the nominal rate (a folder's default is 10, UCSD's rate).

    A folder whose name is all digits must be written as a path (./01), as in other tools
    where a bare number means a camera.
    """
    if isinstance(spec, str):
        if not spec.strip():
            raise SourceError("no source given (empty name)")
        if re.fullmatch(r"\d+", spec, flags=re.ASCII):
            source: FrameSource = WebcamSource(int(spec))
            return _override_fps(source, fps)
        scheme = _scheme(spec)
        if scheme is not None:
            if scheme not in STREAM_SCHEMES:
                raise SourceError(
                    f"{mask_url(spec)}: unsupported scheme {scheme!r} "
                    f"(use one of {', '.join(sorted(STREAM_SCHEMES))}, a file or a folder)"
                )
            return _override_fps(StreamSource(spec, open_timeout_s, read_timeout_s), fps)
    path = Path(spec)
    problem = special_file_problem(path)
    if problem:
        raise SourceError(problem)
    if path.is_dir():
        return FolderSource(path, DEFAULT_FOLDER_FPS if fps is None else fps)
    if path.exists():
        return VideoFileSource(path, fps)
    raise SourceError(f"{path} does not exist")


def _override_fps(source: FrameSource, fps: float | None) -> FrameSource:
    if fps is not None:
        source.fps = _check_fps(fps, source.name)
    return source


def paced(
    frames: Iterable[Frame],
    fps: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Frame]:
    """Yield `frames` no faster than `fps`: frame i not before start + i/fps.

    The schedule is fixed at the first frame, like a camera's: a consumer that falls behind
    gets the frames that are due at once (never an extra sleep), and the average rate stays
    the source's, so a replay takes as long as the footage.
    """
    # Checked here, not inside the generator, so a bad rate fails where paced() is called.
    return _paced(frames, 1.0 / _check_fps(fps, "paced"), clock, sleep)


def _paced(
    frames: Iterable[Frame],
    period: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[Frame]:
    start: float | None = None
    for i, frame in enumerate(frames):
        now = clock()
        if start is None:
            start = now
        delay = start + i * period - now
        if delay > 0:
            sleep(delay)
        yield frame
