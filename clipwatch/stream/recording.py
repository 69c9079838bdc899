"""Recorded normal footage of one camera: frames as the model sees them, in chunks on disk.

A recording is a folder: `recording.json` (the source, frame rate, what was kept and left
out) and one folder of JPEG frames per chunk (`chunk_0000/000000.jpg`, ...). Frames are
stored as `model_pixels` makes them (grayscale at the model's input size, JPEG quality 95:
21.6 KB a frame on vtest.avi's street, 13 MB a minute at 10 frames/s), so reading a chunk
back through the one preprocessing function gives the model what the live camera gave it.
Each chunk is a normal clip for training (`stream/footage.py` reads a folder of clip
folders), and chunks spread over the recording are held out to calibrate and judge the
model learned from the rest.

Writing is bounded (`max_bytes`: the recording stops, full, never the disk) and survives a
restart: `FootageWriter.reopen` carries on after the last whole chunk (a chunk being written
when the process died is dropped, never read half-written). Frames the caller says are not
normal (an alert was open) end the chunk in progress, so no training clip spans them;
`discard` drops the chunk in progress too (the lead-in of an alert), and `drop_since` removes
whole chunks the operator says were not normal (each chunk's first and last frame time are
kept for it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from clipwatch.errors import ClipwatchError
from clipwatch.jsonfile import write_json
from clipwatch.stream.preprocess import InputSpec, model_pixels

META = "recording.json"
JPEG_QUALITY = 95
MIN_CHUNK_FRAMES = 20  # a chunk shorter than two clips is no use to training or calibration


class RecordingError(ClipwatchError):
    """A recording cannot be written, read, or is too short for what was asked."""


@dataclass
class RecordingInfo:
    source: str
    fps: float
    chunk_frames: int
    size: int  # the model input size the frames were stored at
    started_at: float = field(default_factory=time.time)
    chunks: list[str] = field(default_factory=list)  # whole chunks, in order
    frames: int = 0  # in whole chunks
    bytes: int = 0
    left_out: int = 0  # frames not kept (alerts, marked spans, gaps too short for a chunk)
    full: bool = False  # stopped at max_bytes
    spans: dict[str, list[float]] = field(default_factory=dict)  # chunk -> [first, last] time
    next_chunk: int = 0  # the next chunk's number (chunks dropped leave holes in the names)

    def to_dict(self) -> dict:
        return asdict(self)


def read_info(folder: Path) -> RecordingInfo:
    try:
        return RecordingInfo(**json.loads((Path(folder) / META).read_text()))
    except FileNotFoundError:
        raise RecordingError(f"{folder} is not a recording (no {META})") from None
    except (OSError, ValueError, TypeError) as exc:
        raise RecordingError(f"cannot read the recording in {folder}: {exc}") from None


def _write_info(folder: Path, info: RecordingInfo) -> None:
    """recording.json, atomically (a crash leaves the old one)."""
    write_json(folder / META, info.to_dict())


class FootageWriter:
    """Appends frames to a recording in chunks of `chunk_frames`; stops at `max_bytes`."""

    def __init__(self, folder: Path, info: RecordingInfo, spec: InputSpec,
                 max_bytes: int | None = None) -> None:
        self.folder = Path(folder)
        self.info = info
        self.spec = spec
        self.max_bytes = max_bytes
        self._chunk: list[bytes] = []  # encoded frames of the chunk in progress
        self._span: list[float] = []  # its first and last frame's time

    @classmethod
    def create(cls, folder: Path, source: str, fps: float, spec: InputSpec,
               chunk_frames: int = 100, max_bytes: int | None = None) -> FootageWriter:
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise RecordingError(f"{folder} is not empty; choose a new folder for a recording")
        if chunk_frames < MIN_CHUNK_FRAMES:
            raise RecordingError(f"chunks need at least {MIN_CHUNK_FRAMES} frames")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            info = RecordingInfo(source=source, fps=fps, chunk_frames=chunk_frames,
                                 size=spec.size)
            _write_info(folder, info)
        except OSError as exc:
            raise RecordingError(f"cannot write a recording in {folder}: "
                                 f"{exc.strerror or exc}") from None
        return cls(folder, info, spec, max_bytes)

    @classmethod
    def reopen(cls, folder: Path, spec: InputSpec,
               max_bytes: int | None = None) -> FootageWriter:
        """Carry on after a restart: chunk folders recording.json does not list (one being
        written when the process stopped) are removed."""
        info = read_info(folder)
        numbers = [int(c.rsplit("_", 1)[1]) for c in info.chunks if c.rsplit("_", 1)[1].isdigit()]
        info.next_chunk = max([info.next_chunk, *(n + 1 for n in numbers)])
        for path in Path(folder).glob("chunk_*"):
            if path.name not in info.chunks:
                shutil.rmtree(path, ignore_errors=True)
        return cls(Path(folder), info, spec, max_bytes)

    @property
    def full(self) -> bool:
        return self.info.full

    @property
    def pending(self) -> int:
        """Frames of the chunk in progress (not stored yet)."""
        return len(self._chunk)

    def add(self, image: np.ndarray, at: float | None = None) -> bool:
        """Keep one frame (captured at `at`, default now); False once the recording is full
        (the frame is not kept)."""
        if self.info.full:
            return False
        ok, data = cv2.imencode(".jpg", model_pixels(image, self.spec),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RecordingError("a frame could not be encoded")
        pending = sum(len(b) for b in self._chunk) + len(data)
        if self.max_bytes is not None and self.info.bytes + pending > self.max_bytes:
            self.info.full = True
            self.flush()
            return False
        self._chunk.append(data.tobytes())
        at = time.time() if at is None else at
        self._span = [self._span[0] if self._span else at, at]
        if len(self._chunk) >= self.info.chunk_frames:
            self.flush()
        return True

    def leave_out(self, frames: int = 1) -> None:
        """Frames that are not normal footage: the chunk in progress ends before them."""
        self.info.left_out += frames
        self.flush()

    def discard(self) -> None:
        """Drop the chunk in progress (its frames count as left out)."""
        self.info.left_out += len(self._chunk)
        self._chunk, self._span = [], []
        _write_info(self.folder, self.info)

    def drop_since(self, since: float) -> int:
        """Frames captured from `since` on were not normal: the chunk in progress and every
        whole chunk that ends at or after `since` are removed. Returns the frames dropped."""
        dropped = len(self._chunk)
        self.info.left_out += len(self._chunk)
        self._chunk, self._span = [], []
        for name in [c for c in self.info.chunks if self.info.spans.get(c, [0, 0])[1] >= since]:
            frames = sum(1 for _ in (self.folder / name).glob("*.jpg"))
            size = sum(f.stat().st_size for f in (self.folder / name).glob("*.jpg"))
            self.info.chunks.remove(name)
            self.info.spans.pop(name, None)
            self.info.frames -= frames
            self.info.bytes -= size
            self.info.left_out += frames
            dropped += frames
            _write_info(self.folder, self.info)  # listed no more, then removed
            shutil.rmtree(self.folder / name, ignore_errors=True)
        _write_info(self.folder, self.info)
        return dropped

    def flush(self) -> None:
        """Store the chunk in progress (dropped when too short to be a clip)."""
        chunk, self._chunk = self._chunk, []
        span, self._span = self._span, []
        if len(chunk) >= MIN_CHUNK_FRAMES:
            name = f"chunk_{self.info.next_chunk:04d}"
            tmp = self.folder / f".{name}.tmp"
            try:
                tmp.mkdir()
                for k, data in enumerate(chunk):
                    (tmp / f"{k:06d}.jpg").write_bytes(data)
                os.replace(tmp, self.folder / name)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise RecordingError(f"cannot write {self.folder / name}: "
                                     f"{exc.strerror or exc}") from None
            self.info.chunks.append(name)
            self.info.next_chunk += 1
            self.info.spans[name] = span
            self.info.frames += len(chunk)
            self.info.bytes += sum(len(b) for b in chunk)
        elif chunk:
            self.info.left_out += len(chunk)
        _write_info(self.folder, self.info)

    def close(self) -> RecordingInfo:
        self.flush()
        return self.info


@dataclass(frozen=True)
class FootageSplit:
    """Which chunks train the model, which calibrate it and which judge it."""

    train: list[str]
    calibrate: list[str]
    judge: list[str]


def split_chunks(chunks: list[str], held_every: int = 3) -> FootageSplit:
    """Every `held_every`-th chunk is held out (spread over the recording, so the busy and
    the quiet hours of a schedule are in both), alternately to calibrate and to judge; at
    least one of each, and two chunks to train."""
    if len(chunks) < 4:
        raise RecordingError(f"the recording has {len(chunks)} usable chunks; learning needs "
                             f"at least 4 (two to train, one to calibrate, one to judge): "
                             "record longer")
    held = [c for k, c in enumerate(chunks) if k % held_every == held_every - 1]
    if len(held) < 2:
        held = chunks[-2:]
    train = [c for c in chunks if c not in held]
    return FootageSplit(train, held[0::2], held[1::2])
