"""A camera's pipeline without threads or clocks: frames put straight into its grabber's
queue, the inference loop run one pass at a time, on the real model and real frames.

The central check of the one scoring path: the live service gives every frame exactly the
regularity `replay` reports for it. Then gaps, a frame that cannot be used, and alerts
stored before they are broadcast.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clipwatch.config import AlertConfig, CameraConfig, LiveConfig
from clipwatch.model.reconstructors import load_model
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.replay import replay, replay_targets
from clipwatch.server.event_store import EventStore
from clipwatch.server.grabber import GrabbedFrame
from clipwatch.server.hub import Hub
from clipwatch.server.inference_loop import InferenceLoop
from clipwatch.server.metrics import Metrics
from clipwatch.server.pipeline import CameraPipeline, Services
from clipwatch.stream.sources import open_source

QUEUE = 20


class RecordingHub(Hub):
    """The real hub's message building, with what it would send recorded (no clients)."""

    def __init__(self) -> None:
        super().__init__(LiveConfig(), Metrics())
        self.messages: list[dict] = []
        self.frames: list = []

    def publish(self, message) -> None:
        from clipwatch.server.messages import to_wire

        self.messages.append(to_wire(message))

    def publish_frame(self, frame) -> None:
        self.frames.append(frame)

    def wants_frames(self, camera: str) -> tuple[bool, bool]:
        return True, True

    def scores(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "score"]


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)  # variant auto: what `serve` runs by default


@pytest.fixture(scope="module")
def frames(sample_clip):
    with open_source(sample_clip) as source:
        return list(source)


def make_pipeline(model, tmp_path, sample_clip, **camera):
    hub = RecordingHub()
    services = Services(model, EventStore(tmp_path / "store"), hub, Metrics(), AlertConfig(),
                        LiveConfig(frame_queue=QUEUE), 85, threading.Event())
    pipeline = CameraPipeline(CameraConfig(id="cam", source=str(sample_clip), **camera),
                              services)
    loop = InferenceLoop(services, lambda: [pipeline])  # never started: run_once by hand
    return pipeline, loop, hub


def feed(pipeline, loop, items):
    """Put grabbed frames in the queue a chunk at a time, one inference pass per chunk."""
    for start in range(0, len(items), QUEUE):
        for item in items[start:start + QUEUE]:
            pipeline.grabber.queue.put(item)
        loop.run_once()


def grabbed(frames, segment=1, first_seq=1, at=1000.0):
    return [GrabbedFrame(f, segment, at + k / 10, first_seq + k) for k, f in enumerate(frames)]


def test_the_live_pipeline_scores_exactly_what_replay_reports(model, frames, sample_clip,
                                                              tmp_path):
    pipeline, loop, hub = make_pipeline(model, tmp_path, sample_clip)
    feed(pipeline, loop, grabbed(frames))
    live = hub.scores()
    assert [m["frame"] for m in live] == list(range(len(frames)))
    report = replay(replay_targets(str(sample_clip)), model, show_progress=False)
    (clip,) = report.clips
    served = np.array([np.nan if m["regularity"] is None else m["regularity"] for m in live])
    np.testing.assert_array_equal(np.isnan(served), np.isnan(clip.live))
    np.testing.assert_allclose(served[~np.isnan(served)], clip.live[~np.isnan(clip.live)],
                               rtol=1e-9)
    np.testing.assert_allclose([m["error"] for m in live], clip.errors, rtol=1e-9)
    assert np.isnan(served[:9]).all() and not np.isnan(served[9:]).any()  # warm-up only
    # Each scored frame went to the viewers, with its heatmap.
    assert [f.frame for f in hub.frames] == list(range(len(frames)))
    assert all(f.plain and f.overlay for f in hub.frames)
    assert pipeline.sequencer.in_flight == 0 and pipeline.frames_scored == len(frames)


def test_a_gap_restarts_clips_and_warm_up_and_drops_nothing_scored(model, frames, sample_clip,
                                                                   tmp_path):
    pipeline, loop, hub = make_pipeline(model, tmp_path, sample_clip)
    first = grabbed(frames[:25])
    # A reconnect (new segment, source indices from 0 again), then the queue drops two.
    second = grabbed(frames[:20], segment=2, first_seq=26)
    third = grabbed(frames[22:40], segment=2, first_seq=48)
    feed(pipeline, loop, first + second + third)
    scores = hub.scores()
    assert len(scores) == 25 + 20 + 18
    regularity = [m["regularity"] for m in scores]
    for start in (0, 25, 45):  # each unbroken run warms up again
        assert all(r is None for r in regularity[start:start + 9])
        assert regularity[start + 9] is not None
    # The reconnect's frames are scored from their own clips: the same as the first run's.
    np.testing.assert_allclose([m["error"] for m in scores[25:45]],
                               [m["error"] for m in scores[:20]], rtol=1e-6)
    assert pipeline.sequencer.in_flight == 0


def test_a_failed_inference_call_drops_its_frames_and_restarts_like_a_gap(model, frames,
                                                                          sample_clip, tmp_path):
    pipeline, loop, hub = make_pipeline(model, tmp_path, sample_clip)
    real = model.reconstructor.reconstruct
    failing = {"now": False}

    def failing_once(requests):  # the second pass's call fails (a scorer gone, say)
        if failing["now"]:
            failing["now"] = False
            raise RuntimeError("inference failed")
        return real(requests)

    model.reconstructor.reconstruct = failing_once
    try:
        items = grabbed(frames[:60])
        for start in range(0, 60, QUEUE):
            for item in items[start:start + QUEUE]:
                pipeline.grabber.queue.put(item)
            if start == QUEUE:
                failing["now"] = True
                with pytest.raises(RuntimeError):
                    loop.run_once()
            else:
                loop.run_once()
    finally:
        model.reconstructor.reconstruct = real
    scores = hub.scores()
    assert [m["frame"] for m in scores] == list(range(20)) + list(range(40, 60))
    regularity = [m["regularity"] for m in scores]
    assert all(r is None for r in regularity[20:29]) and regularity[29] is not None
    assert pipeline.sequencer.in_flight == 0  # nothing of the lost frames is kept


def test_a_frame_that_cannot_be_used_is_skipped_like_a_gap(model, frames, sample_clip,
                                                          tmp_path):
    pipeline, loop, hub = make_pipeline(model, tmp_path, sample_clip)
    broken = frames[12]._replace(image=np.zeros((0, 0, 3), np.uint8))
    items = grabbed(frames[:12] + [broken] + frames[13:30])
    feed(pipeline, loop, items)
    scored = [m["frame"] for m in hub.scores()]
    assert 12 not in scored and scored == list(range(12)) + list(range(13, 30))
    assert pipeline.sequencer.in_flight == 0


def test_an_abnormal_stretch_raises_one_stored_then_broadcast_alert(model, frames, sample_clip,
                                                                    tmp_path):
    # A threshold every frame falls below: an alert opens after open_frames verdicts.
    pipeline, loop, hub = make_pipeline(model, tmp_path, sample_clip, threshold=1.0)
    feed(pipeline, loop, grabbed(frames[:30]))
    alerts = [m for m in hub.messages if m["type"] == "alert"]
    assert [a["event"] for a in alerts][:1] == ["start"]
    start = alerts[0]
    events, total = pipeline.s.store.list()  # stored before it was broadcast
    assert total == 1 and events[0]["id"] == start["alert"]["id"]
    assert start["alert"]["start_frame"] == 9  # the first frame with a verdict
    assert pipeline.tracker.alert.id == start["alert"]["id"]
    pipeline.stop()
    ended = [m for m in hub.messages if m["type"] == "alert"][-1]
    assert ended["event"] == "end"


def test_a_camera_learning_its_baseline_is_never_sampled(model, sample_clip, tmp_path):
    """Scoring capacity below what two 30 fps cameras ask: the calibrated one is sampled
    evenly, the one learning its baseline is not (a frame left out would read as fast motion
    and inflate the baseline for good); it may drop frames instead, which are gaps."""
    from clipwatch.server.grabber import CameraStatus
    from clipwatch.server.inference_loop import balance_cameras

    services = Services(model, EventStore(tmp_path), RecordingHub(), Metrics(), AlertConfig(),
                        LiveConfig(), 85, threading.Event())
    learning = CameraPipeline(CameraConfig(id="new", source=str(sample_clip),
                                           baseline_frames=60), services)
    calibrated = CameraPipeline(CameraConfig(id="old", source=str(sample_clip)), services)
    for pipeline in (learning, calibrated):
        pipeline.grabber.status = CameraStatus("live", None, 0.0)
        for k in range(60):
            pipeline.grabber._sampler.take(k / 30)  # frames arriving at 30 a second
    assert learning.live.learning and not calibrated.live.learning
    balance_cameras([learning, calibrated], seconds_per_clip=1 / 20)  # ~20 clips/s for both
    assert calibrated.grabber.sample_fps is not None and calibrated.grabber.sample_fps < 30
    assert learning.grabber.sample_fps is None
