"""Event clips (clipwatch/server/clips.py) on real frames, with the real alert tracker,
outbox and event store: the pre-roll ring, the clip's timing (its first frame is the
alert's start less the pre-roll), the post-roll, the length cap, a camera that stops or goes
quiet mid-clip, the heatmap, both formats, a broken clips folder, and retention.

Frames carry synthetic capture times (10 frames/s of Ped2 test 1, 2023-11-14 22:13:20 UTC
on): the recorder takes the frames' own times, never the clock, except for the grace it
gives a source that went quiet.
"""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
from server_helpers import wait_for

from clipwatch.config import AlertConfig, ClipConfig
from clipwatch.server.alerts import AlertTracker, ScoredFrame
from clipwatch.server.clips import ClipRecorder, FrameRing, clip_size
from clipwatch.server.event_store import EventStore
from clipwatch.server.messages import to_wire
from clipwatch.server.outbox import AlertOutbox
from clipwatch.stream.sources import open_source

T0 = 1_700_000_000.0
FPS = 10.0
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def images(sample_clip):
    with open_source(sample_clip) as source:
        return [frame.image for frame in source]


class Camera:
    """One camera's alert path as the pipeline wires it: tracker -> outbox (store, then
    publish) with the recorder hooked in, frames handed to the recorder before the tracker
    sees their score."""

    def __init__(self, tmp_path, clip: ClipConfig, rules: AlertConfig | None = None,
                 camera: str = "cam") -> None:
        self.rules = rules or AlertConfig(open_frames=5, close_frames=3, merge_seconds=0)
        self.store = EventStore(tmp_path / "store")
        self.messages: list[dict] = []
        publish = lambda message: self.messages.append(to_wire(message))  # noqa: E731
        self.tracker = AlertTracker(camera, self.rules)
        self.recorder = ClipRecorder(camera, clip, self.store, publish, 85,
                                     lambda: self.rules.open_frames)
        self.outbox = AlertOutbox(camera, self.store, publish, 85,
                                  on_stored=lambda _, event_id: self.tracker.set_id(event_id),
                                  clips=self.recorder)
        self.recorder.start()

    def frame(self, k: int, image: np.ndarray, regularity: float,
              error_map: np.ndarray | None = None) -> None:
        at = T0 + k / FPS
        self.recorder.add(at, image, error_map)
        self.outbox.send(self.tracker.push(ScoredFrame(k, at, regularity, THRESHOLD)))

    def play(self, images, abnormal: range, frames: range, **kw) -> None:
        for k in frames:
            self.frame(k, images[k % len(images)], 0.1 if k in abnormal else 0.9, **kw)

    def clip_event(self, timeout: float = 20.0) -> dict:
        """The event once its clip is attached (from the update message that says so)."""
        def attached():
            return next((m["alert"] for m in self.messages if m["type"] == "alert"
                         and m["event"] == "update" and m["alert"]["clip_url"]), None)
        return wait_for(attached, timeout, interval=0.05, what="the clip to be attached")

    def close(self) -> None:
        self.recorder.stop()
        self.recorder.join(10)
        self.store.close()


def read_clip(path) -> dict:
    """What a player sees in a clip: its frames' times and images, the capture time of its
    first frame (the container's tag) and its duration."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="bgr24"))
                  for f in container.decode(stream)]
        return {"start": float(container.metadata["CLIPWATCH_START"]),
                "creation_time": container.metadata.get("creation_time"),
                "times": [t for t, _ in frames], "images": [i for _, i in frames],
                "duration": container.duration / 1e6, "codec": stream.codec_context.name,
                "size": (stream.width, stream.height)}


def test_the_ring_keeps_what_an_alert_can_start_at_and_is_bounded_in_bytes():
    ring = FrameRing(max_bytes=1000)
    for k in range(9):
        ring.append(T0 + k, bytes(100))
    ring.append(T0 + 9, bytes(50), np.zeros(50, np.uint8))  # an error map counts too
    assert len(ring.frames) == 10 and ring.bytes == 1000
    ring.append(T0 + 10, bytes(100))  # over the bound: the oldest goes, counted
    assert ring.frames[0][0] == T0 + 1 and ring.shortened == 1 and ring.bytes == 1000
    assert ring.at_from_newest(1) == T0 + 10 and ring.at_from_newest(3) == T0 + 8
    assert ring.at_from_newest(11) is None
    ring.trim(T0 + 7)
    assert [at for at, *_ in ring.frames] == [T0 + 7, T0 + 8, T0 + 9, T0 + 10]
    assert [at for at, *_ in ring.since(T0 + 9)] == [T0 + 9, T0 + 10]


def test_clip_size_scales_down_to_even_sizes_and_never_up():
    assert clip_size((240, 360, 3), 480) == (360, 240)
    assert clip_size((1080, 1920, 3), 480) == (854, 480)
    assert clip_size((241, 361, 3), 480) == (360, 240)  # even, for 4:2:0


def test_a_clip_runs_from_the_pre_roll_to_the_post_roll_at_the_frames_own_times(images,
                                                                                   tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=2, post_seconds=1))
    # abnormal from frame 60: the alert starts there (open_frames later), ends 3 calm frames
    # after frame 89; the frames after the post-roll close the clip
    camera.play(images, abnormal=range(60, 90), frames=range(0, 110))
    event = camera.clip_event()
    assert event["started_at"] == pytest.approx(T0 + 6.0)
    assert event["ended_at"] == pytest.approx(T0 + 9.2)  # the third calm frame
    assert event["clip_url"] == f"/api/events/{event['id']}/clip.webm"
    path = camera.store.clip_path(event["id"])
    assert path.name == f"{event['id']}-clip.webm" and path.parent.name == "cam"
    clip = read_clip(path)
    # the first frame is the alert's start less the pre-roll, the last the end plus the
    # post-roll: frames 40..102, every one at its own time
    assert clip["start"] == pytest.approx(event["started_at"] - 2.0, abs=1e-6)
    assert clip["creation_time"].startswith("2023-11-14T22:13:24.000000")
    assert len(clip["times"]) == 102 - 40 + 1
    np.testing.assert_allclose(clip["times"], np.arange(63) / FPS, atol=1e-3)
    assert clip["duration"] == pytest.approx(6.3, abs=0.01)
    assert clip["codec"] == "vp9" and clip["size"] == (360, 240)
    # the frames are the camera's (lossy: close, not equal)
    for k, image in ((0, images[40]), (30, images[70]), (62, images[102])):
        assert np.abs(clip["images"][k].astype(int) - image).mean() < 6
    # stored before it was broadcast; the events table names the file
    assert camera.store.get(event["id"])["clip"] == f"cam/{event['id']}-clip.webm"
    assert camera.recorder.clips_written == 1 and camera.recorder.frames_dropped == 0
    assert not list(path.parent.glob("*.part"))
    camera.close()


def test_an_update_message_in_the_store_tells_resuming_viewers_of_the_clip(images, tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=0))
    camera.play(images, abnormal=range(20, 30), frames=range(0, 40))
    event = camera.clip_event()
    kinds = [(m["event"], m["alert"]["clip_url"]) for m in camera.store.messages_since(0)]
    assert kinds == [("start", None), ("end", None), ("update", event["clip_url"])]
    camera.close()


def test_a_long_alert_keeps_its_first_max_seconds(images, tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=1, max_seconds=3))
    camera.play(images, abnormal=range(20, 170), frames=range(0, 175))
    event = camera.clip_event()
    clip = read_clip(camera.store.clip_path(event["id"]))
    assert clip["start"] == pytest.approx(T0 + 1.0, abs=1e-6)  # frame 20 less 1 s
    assert len(clip["times"]) == 31 and clip["duration"] == pytest.approx(3.1, abs=0.01)
    assert event["state"] == "closed"  # the cap closed the clip, not the alert: it went on
    camera.close()


def test_a_camera_that_stops_mid_alert_finishes_its_clip_with_what_it_has(images, tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=5))
    camera.play(images, abnormal=range(20, 100), frames=range(0, 50))
    assert camera.tracker.is_open
    camera.outbox.send(camera.tracker.close(T0 + 4.9))  # what CameraPipeline.stop does
    camera.recorder.stop()
    camera.recorder.join(10)
    event = camera.clip_event(timeout=1)
    clip = read_clip(camera.store.clip_path(event["id"]))
    assert clip["start"] == pytest.approx(T0 + 1.0, abs=1e-6)
    assert len(clip["times"]) == 40  # frames 10..49: all it had
    camera.store.close()


def test_a_source_that_goes_quiet_after_the_end_closes_its_clip_after_the_post_roll(images,
                                                                                    tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=0.5))
    camera.play(images, abnormal=range(20, 30), frames=range(0, 34))  # ends at frame 32
    began = time.monotonic()
    event = camera.clip_event()
    waited = time.monotonic() - began
    assert 0.4 < waited < 5  # the post-roll and its grace, in wall time
    clip = read_clip(camera.store.clip_path(event["id"]))
    assert len(clip["times"]) == 34 - 10  # frames 10..33: what came
    camera.close()


def test_the_heatmap_option_blends_the_error_map_into_the_frames(images, tmp_path):
    error_map = np.zeros((227, 227), np.float32)
    error_map[80:150, 80:150] = 0.25  # the hottest colour, in the middle
    camera = Camera(tmp_path, ClipConfig(pre_seconds=0.5, post_seconds=0, heatmap=True))
    camera.play(images, abnormal=range(10, 20), frames=range(0, 25), error_map=error_map)
    clip = read_clip(camera.store.clip_path(camera.clip_event()["id"]))
    frame = clip["images"][0].astype(int)
    middle, corner = frame[100:140, 160:200], frame[0:40, 0:40]
    # red over the hot square (BGR), the grey scene elsewhere (Ped2 is grey)
    assert (middle[..., 2] - middle[..., 0]).mean() > 60
    assert np.abs(corner[..., 2] - corner[..., 0]).mean() < 10
    camera.close()


def test_mp4_clips_are_h264(images, tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=0, format="mp4",
                                         height=120))
    camera.play(images, abnormal=range(20, 30), frames=range(0, 40))
    event = camera.clip_event()
    assert event["clip_url"].endswith("/clip.mp4")
    clip = read_clip(camera.store.clip_path(event["id"]))
    assert clip["codec"] == "h264" and clip["size"] == (180, 120)  # scaled down, aspect kept
    assert clip["start"] == pytest.approx(T0 + 1.0, abs=1e-6)
    camera.close()


def test_a_broken_clips_folder_costs_the_clip_not_the_alert(images, tmp_path, caplog):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=0))
    camera.store.clips.write_text("not a folder")
    camera.play(images, abnormal=range(20, 30), frames=range(0, 40))
    wait_for(lambda: camera.recorder.clips_failed == 1, 10, interval=0.05,
             what="the clip to fail")
    (event,), _ = camera.store.list()
    assert event["state"] == "closed" and event["clip_url"] is None
    assert sum("cannot write an event clip" in r.getMessage() for r in caplog.records) == 1
    camera.close()


def test_retention_deletes_clips_by_age_and_beyond_their_size_budget(images, tmp_path):
    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=0))
    camera.play(images, abnormal=range(20, 30), frames=range(0, 40))
    first = camera.clip_event()
    camera.messages.clear()
    camera.play(images, abnormal=range(70, 80), frames=range(40, 90))
    second = camera.clip_event()
    store = camera.store
    paths = [store.clip_path(e["id"]) for e in (first, second)]
    assert all(p.is_file() for p in paths)
    # both fit a generous budget; the snapshot budget says nothing about clips
    assert store.prune(None, 0, now=T0 + 100, max_clip_bytes=10**9) == 0
    # over a budget that holds one clip: the older goes
    assert store.prune(None, None, max_clip_bytes=paths[1].stat().st_size) == 1
    assert not paths[0].exists() and paths[1].exists()
    assert store.get(first["id"])["clip"] is None and store.clip_path(first["id"]) is None
    # by age: a day after
    assert store.prune(1.0, None, now=T0 + 2 * 86400) == 1
    assert not paths[1].exists() and store.get(second["id"])["clip"] is None
    camera.close()


def test_partial_clips_a_crash_left_are_removed_when_the_store_opens(tmp_path):
    store = EventStore(tmp_path / "store")
    store.close()
    partial = tmp_path / "store" / "clips" / "cam" / ".1700000000000-1.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half a clip")
    EventStore(tmp_path / "store").close()
    assert not partial.exists()


def test_a_full_queue_drops_frames_and_never_waits(images, tmp_path, monkeypatch):
    from clipwatch.server import clips

    monkeypatch.setattr(clips, "QUEUE_BYTES", images[0].nbytes * 3)
    recorder = ClipRecorder("cam", ClipConfig(), EventStore(tmp_path / "s"), lambda m: None, 85)
    began = time.perf_counter()
    for k in range(10):  # the thread is not started: nothing drains the queue
        recorder.add(T0 + k / FPS, images[k], None)
    assert time.perf_counter() - began < 0.05
    assert recorder.frames_dropped == 7


def test_the_clip_config_is_the_issues_shape_and_refuses_unknown_keys(tmp_path):
    import yaml

    from clipwatch.config import ConfigError, load_config

    path = tmp_path / "clipwatch.yaml"
    camera = {"id": "gate", "source": str(tmp_path), "clip": {"pre_seconds": 5,
                                                              "post_seconds": 5}}
    path.write_text(yaml.safe_dump({"cameras": [camera]}))
    clip = load_config(path).cameras[0].clip
    assert (clip.pre_seconds, clip.post_seconds, clip.format, clip.heatmap) == (5, 5, "webm",
                                                                                False)
    camera["clip"]["pre_roll"] = 5
    path.write_text(yaml.safe_dump({"cameras": [camera]}))
    with pytest.raises(ConfigError, match=r"cameras\.0\.clip\.pre_roll: Extra inputs"):
        load_config(path)


def test_a_clip_the_store_refuses_to_attach_is_retried_until_it_takes_it(images, tmp_path):
    from clipwatch.server.event_store import StoreError

    camera = Camera(tmp_path, ClipConfig(pre_seconds=1, post_seconds=0))
    attach, refusals = camera.store.attach_clip, []

    def failing(*args):
        if len(refusals) < 2:  # the database is full for a while
            refusals.append(args)
            raise StoreError("cannot store the clip: database or disk is full")
        return attach(*args)

    camera.store.attach_clip = failing
    camera.play(images, abnormal=range(20, 30), frames=range(0, 40))
    event = camera.clip_event(timeout=10)  # retried once a second
    assert len(refusals) == 2 and camera.store.clip_path(event["id"]).is_file()
    assert camera.recorder.clips_written == 1 and camera.recorder.clips_failed == 0
    camera.close()
