"""Frame sources against real footage: the UCSD frames in both formats, a real video file, a
real HTTP server, and the failures users actually cause (missing paths, wrong files)."""

import functools
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from clipwatch.errors import SourceError
from clipwatch.stream.sources import (
    FolderSource,
    Frame,
    StreamSource,
    VideoFileSource,
    WebcamSource,
    mask_url,
    open_source,
    paced,
)


@pytest.fixture(scope="module")
def jpeg_clip(shared_data: Path) -> Path:
    return shared_data / "ucsd_ped2" / "testing" / "frames" / "01"


@pytest.fixture(scope="module")
def tif_scene(shared_data: Path) -> Path:
    return shared_data / "ucsd_ped2_tif" / "UCSDped2"


@pytest.fixture(scope="module")
def vtest(shared_data: Path) -> Path:
    return shared_data / "video" / "vtest.avi"


# --- folders --------------------------------------------------------------------------------


def test_folder_of_jpeg_frames(jpeg_clip: Path) -> None:
    with FolderSource(jpeg_clip) as source:
        assert (source.fps, source.frame_count, source.is_live) == (10.0, 180, False)
        frames = list(source)
    assert [f.index for f in frames] == list(range(180))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(180)])
    assert {f.image.shape for f in frames} == {(240, 360, 3)}
    assert {f.image.dtype for f in frames} == {np.dtype(np.uint8)}


def test_sample_clip_shipped_in_repo(sample_clip: Path) -> None:
    # The fresh-clone path: the same clip, with no ../shared at all.
    assert sum(1 for _ in FolderSource(sample_clip)) == 180


def test_folder_of_official_grayscale_tifs(tif_scene: Path) -> None:
    # The official frames are single-channel TIFFs; sources promise 3-channel BGR anyway.
    frames = list(FolderSource(tif_scene / "Test" / "Test001"))
    assert len(frames) == 180
    assert frames[0].image.shape == (240, 360, 3)
    assert np.array_equal(frames[0].image[..., 0], frames[0].image[..., 2])


def test_folder_train_clip_counts_every_tif(tif_scene: Path) -> None:
    folder = tif_scene / "Train" / "Train001"
    listed = [n for n in os.listdir(folder) if n.lower().endswith(".tif")]
    source = FolderSource(folder)
    assert source.frame_count == len(listed) > 0
    assert sum(1 for _ in source) == len(listed)


@pytest.mark.parametrize(
    ("names", "originals"),
    [
        (["1.jpg", "2.jpg", "10.jpg"], ["000.jpg", "060.jpg", "120.jpg"]),
        (["001.tif", "2.TIF", "010.tif"], ["001.tif", "061.tif", "121.tif"]),
    ],
)
def test_folder_natural_order_and_ignored_files(
    tmp_path: Path,
    jpeg_clip: Path,
    tif_scene: Path,
    names: list[str],
    originals: list[str],
) -> None:
    src_dir = jpeg_clip if originals[0].endswith(".jpg") else tif_scene / "Test" / "Test001"
    # Written in reverse so directory order cannot happen to be the right order.
    for name, original in reversed(list(zip(names, originals, strict=True))):
        shutil.copy(src_dir / original, tmp_path / name)
    # Things a real frame folder contains that are not frames.
    (tmp_path / "notes.txt").write_text("camera 3, lobby")
    (tmp_path / "._1.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (tmp_path / "sub").mkdir()
    shutil.copy(src_dir / originals[0], tmp_path / "sub" / "0.jpg")

    frames = list(FolderSource(tmp_path))
    assert len(frames) == 3
    for frame, original in zip(frames, originals, strict=True):
        expected = cv2.imread(str(src_dir / original), cv2.IMREAD_COLOR)
        assert np.array_equal(frame.image, expected), original


def test_folder_with_a_corrupt_frame_names_it(tmp_path: Path, jpeg_clip: Path) -> None:
    shutil.copy(jpeg_clip / "000.jpg", tmp_path / "000.jpg")
    (tmp_path / "001.jpg").write_bytes(b"this is not a jpeg")
    frames = iter(FolderSource(tmp_path))
    assert next(frames).index == 0
    with pytest.raises(SourceError, match="001.jpg"):
        next(frames)


# --- video files ----------------------------------------------------------------------------


def test_video_file(vtest: Path) -> None:
    with VideoFileSource(vtest) as source:
        assert (source.fps, source.frame_count, source.is_live) == (10.0, 795, False)
        count = 0
        for frame in source:
            assert frame.index == count
            assert frame.image.shape == (360, 480, 3)
            count += 1
    assert count == 795
    assert frame.timestamp == pytest.approx(794 / 10)


def test_video_file_first_frame_checked_early_is_still_yielded(vtest: Path) -> None:
    cap = cv2.VideoCapture(str(vtest))
    ok, first = cap.read()
    cap.release()
    assert ok
    source = VideoFileSource(vtest)
    assert np.array_equal(next(iter(source)).image, first)
    # A second pass reopens the file and starts again at frame 0.
    again = next(iter(source))
    assert again.index == 0 and np.array_equal(again.image, first)
    source.close()
    with pytest.raises(SourceError, match="closed"):
        iter(source)


# --- open_source ----------------------------------------------------------------------------


def test_open_source_dispatches_folder_and_file(jpeg_clip: Path, vtest: Path) -> None:
    folder = open_source(jpeg_clip)
    assert isinstance(folder, FolderSource) and folder.fps == 10.0
    assert open_source(str(jpeg_clip), fps=2.5).fps == 2.5
    video = open_source(str(vtest))
    assert isinstance(video, VideoFileSource)
    video.close()


def test_open_source_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "camera7"
    with pytest.raises(SourceError, match="does not exist") as err:
        open_source(missing)
    assert str(missing) in str(err.value)


def test_open_source_unsupported_scheme() -> None:
    with pytest.raises(SourceError, match="ftp"):
        open_source("ftp://x")


def test_open_source_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(SourceError, match="no frames in") as err:
        open_source(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_open_source_text_file_named_avi(tmp_path: Path) -> None:
    fake = tmp_path / "clip.avi"
    fake.write_text("hello, I am not a video\n" * 100)
    with pytest.raises(SourceError, match="not a readable video") as err:
        open_source(fake)
    assert str(fake) in str(err.value)


def test_open_source_missing_webcam() -> None:
    # Digits mean a camera; no machine has a camera 987, so this opens nothing.
    with pytest.raises(SourceError, match="webcam 987"):
        open_source("987")
    with pytest.raises(SourceError):
        WebcamSource(-1)


# --- network streams ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stream_to_closed_port_fails_fast() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/cam.mjpg"
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream"):
        StreamSource(url, open_timeout_s=2)
    assert time.monotonic() - start < 10


def test_stream_error_masks_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with pytest.raises(SourceError) as err:
        open_source("rtsp://user:secret@127.0.0.1:9/x")
    assert "secret" not in str(err.value)
    assert "rtsp://user:***@127.0.0.1:9/x" in str(err.value)
    # RTSP goes over TCP unless the user chose otherwise, with a small probe (first frame
    # in about 0.65 s instead of 3 s).
    options = os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"].split("|")
    assert options[0] == "rtsp_transport;tcp" and "probesize;32768" in options


def test_stream_keeps_users_ffmpeg_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    with pytest.raises(SourceError):
        StreamSource("rtsp://127.0.0.1:9/x", open_timeout_s=2)
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;udp"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:hunter2@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
        ("http://u:p@ss@10.0.0.2/mjpg?x=1", "http://u:***@10.0.0.2/mjpg?x=1"),
        ("rtsp://u:pa/ss@cam:554/live", "rtsp://u:***@cam:554/live"),
        ("rtsp://admin@cam/live", "rtsp://admin@cam/live"),
        ("https://cam/live", "https://cam/live"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.fixture
def http_server(vtest: Path) -> Iterator[str]:
    """A real HTTP server on localhost serving the folder that holds vtest.avi."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(vtest.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_stream_over_http(http_server: str) -> None:
    with StreamSource(f"{http_server}/vtest.avi", open_timeout_s=5) as source:
        assert source.is_live and source.frame_count is None and source.fps == 10.0
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 30:
                break
    assert [f.index for f in frames] == list(range(30))
    assert {f.image.shape for f in frames} == {(360, 480, 3)}
    # Live timestamps are wall-clock seconds since open: non-negative and never decreasing.
    stamps = [f.timestamp for f in frames]
    assert stamps[0] >= 0 and stamps == sorted(stamps)


# --- pacing ---------------------------------------------------------------------------------


class VirtualClock:
    """A clock that only moves when someone sleeps or works: pacing logic without timing."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def _frames(n: int) -> list[Frame]:
    return [Frame(i, i / 10, np.zeros((2, 2, 3), np.uint8)) for i in range(n)]


def test_paced_releases_frame_i_at_i_over_fps() -> None:
    clock = VirtualClock()
    released = [clock.now for _ in paced(_frames(6), 5.0, clock=clock, sleep=clock.sleep)]
    assert released == pytest.approx([100.0 + i / 5 for i in range(6)])


def test_paced_does_not_slow_a_late_consumer() -> None:
    clock = VirtualClock()
    released = []
    for frame in paced(_frames(8), 10.0, clock=clock, sleep=clock.sleep):
        released.append(clock.now - 100.0)
        if frame.index == 2:
            clock.now += 0.35  # the consumer spends 0.35 s on frame 2: 0.15 s late for 3
    # Frames 3-5 were due by the time they were asked for: out at once, no sleep; the
    # schedule then resumes (frame 6 at 0.6 s) rather than restarting from the late frame.
    assert released == pytest.approx([0.0, 0.1, 0.2, 0.55, 0.55, 0.55, 0.6, 0.7])
    assert len(clock.sleeps) == 4  # frames 1, 2, 6, 7


def test_paced_rejects_bad_rate() -> None:
    with pytest.raises(SourceError, match="fps"):
        paced(_frames(2), 0)
