"""CameraPipeline: one camera, from its grabbed frames to scores, alerts and viewers.

It only wires the parts that each own one job:
- `Grabber` (grabber.py): reads the source into a bounded queue, reconnects, status;
- `FrameSequencer` (sequencer.py): sequence numbers and gaps;
- `ClipScorer` (model/clip_scorer.py): clip window, per-frame errors, the live score; the
  same object `replay` and `evaluate` score through;
- `AlertTracker` (alerts.py): alerts open and close with hysteresis;
- `AlertOutbox` (outbox.py): store, then broadcast, retried until stored;
- `FramePublisher` (publisher.py): JPEGs to the viewers through the hub;
- `ClipRecorder` (clips.py): when the camera keeps clips, each alert's video, on its own
  thread (the inference thread only hands it references).
The inference loop (inference_loop.py) takes each camera's due `ClipRequest`s, runs them in
batches across cameras, and hands the reconstructions back to `handle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clipwatch.config import AlertConfig, CameraConfig, LiveConfig
from clipwatch.model.clip_scorer import ClipScorer, FrameScore
from clipwatch.model.reconstructor import ClipRequest
from clipwatch.model.reconstructors import LoadedModel
from clipwatch.model.sidecar import Calibration
from clipwatch.server.alerts import AlertTracker, ScoredFrame
from clipwatch.server.clips import ClipRecorder
from clipwatch.server.event_store import EventStore
from clipwatch.server.grabber import CameraStatus, Grabber
from clipwatch.server.hub import Hub
from clipwatch.server.messages import ScoreMessage, StatusMessage
from clipwatch.server.metrics import Metrics
from clipwatch.server.outbox import AlertOutbox
from clipwatch.server.publisher import FramePublisher
from clipwatch.server.recordings import RecordingManager
from clipwatch.server.sequencer import FrameSequencer
from clipwatch.server.zones import ZoneAlerts, with_regions

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What every camera pipeline shares."""

    model: LoadedModel  # the default model (a camera may run its own: CameraPipeline.model)
    store: EventStore
    hub: Hub
    metrics: Metrics
    alerts: AlertConfig
    live: LiveConfig
    jpeg_quality: int
    wake: threading.Event  # set by grabbers when frames arrive
    recordings: RecordingManager | None = None  # cameras being recorded as normal footage


def camera_calibration(camera: CameraConfig, model: LoadedModel) -> Calibration | None:
    """The calibration in force for a camera: its own constants, or the model's."""
    own = model.sidecar.calibration
    if camera.calibration is None:
        return own
    return Calibration(e_lo=camera.calibration.e_lo, e_hi=camera.calibration.e_hi,
                       threshold=camera.calibration.threshold,
                       false_alarm_rate=own.false_alarm_rate if own else 0.01,
                       data=f"camera {camera.id} config", frames=0,
                       scoring=model.sidecar.scoring)


class CameraPipeline:
    def __init__(self, camera: CameraConfig, services: Services,
                 check_source: Callable[[str], None] | None = None,
                 model: LoadedModel | None = None) -> None:
        self.camera = camera
        self.s = services
        # The camera's own model, else the service-wide one; the inference loop batches the
        # cameras that share one.
        self.model = model or services.model
        settings = self.model.settings(
            camera.stride, camera_calibration(camera, self.model),
            baseline_frames=camera.baseline_frames)
        # Masks and zones are the scorer's (the one scoring path, replay takes them too).
        self.scorer = ClipScorer(camera.id, with_regions(settings, camera), keep_maps=True)
        self.sequencer = FrameSequencer()
        self.tracker = AlertTracker(camera.id, services.alerts,
                                    model=self.model.detector.path.name)
        self.clips = ClipRecorder(camera.id, camera.clip, services.store, services.hub.publish,
                                  services.jpeg_quality, lambda: services.alerts.open_frames) \
            if camera.clip is not None else None
        self.outbox = AlertOutbox(camera.id, services.store, services.hub.publish,
                                  services.jpeg_quality, on_stored=self._alert_stored,
                                  on_started=services.metrics.alerts.labels(camera.id).inc,
                                  clips=self.clips)
        # Each zone's own alerts, beside the camera's (the whole frame's) above.
        self.zones = ZoneAlerts(camera, services.alerts, services.store, services.hub.publish,
                                services.jpeg_quality,
                                services.metrics.alerts.labels(camera.id).inc,
                                model=self.model.detector.path.name, clips=self.clips)
        self.publisher = FramePublisher(camera.id, services.hub, services.jpeg_quality)
        # The grabber's own counts, and how much of each the metrics have been told.
        self._counted = {"frames_in": 0, "frames_sampled_out": 0, "frames_dropped": 0,
                         "clips_written": 0, "clips_failed": 0, "clip_frames_dropped": 0}
        self.frames_scored = 0
        self.stopped = False  # set when removed: a clip still in flight is then discarded
        self.last_regularity: float | None = None
        self._learning = self.live.learning  # to tell viewers when the baseline is learned
        self.grabber = Grabber(camera, services.live.frame_queue, on_frame=services.wake.set,
                               on_status=self._on_status,
                               max_pixels=services.live.max_frame_pixels,
                               check_source=check_source,
                               on_grabbed=self._grabbed if services.recordings else None)
        self._grab_count = 0  # frames read, with a skip at each reconnect (a gap)
        self._grab_segment: int | None = None

    def _grabbed(self, frame, segment: int) -> None:
        """Every frame read (the reader thread), to the camera's recording if it has one:
        recorded footage has every frame, whatever the scoring capacity samples out; frames
        while an alert is open are marked."""
        self._grab_count += 1 if segment == self._grab_segment else 2
        self._grab_segment = segment
        self.s.recordings.feed(self.camera.id, self._grab_count, time.time(), frame.image,
                               self.tracker.is_open or self.zones.is_open)

    @property
    def live(self):
        """The camera's live score (calibration in force, baseline progress)."""
        return self.scorer.live

    # -- status --------------------------------------------------------------------------

    @property
    def status(self) -> CameraStatus:
        status = self.grabber.status
        if status.state == "live" and self.live.learning:
            done, total = self.live.baseline_progress
            return CameraStatus("learning", f"learning this camera's baseline: {done}/{total} "
                                "frames", status.since)
        sampled, fps_in = self.grabber.sample_fps, self.grabber.fps_in
        if status.state == "live" and sampled and fps_in and fps_in > sampled * 1.05:
            return CameraStatus("live", f"scoring {sampled:.1f} of {fps_in:.1f} frames/s "
                                "(sampled evenly to keep up)", status.since)
        return status

    def limit_rate(self, max_fps: float | None) -> None:
        before = self.grabber.sample_fps
        self.grabber.limit_rate(max_fps)
        after = self.grabber.sample_fps
        if (before is None) != (after is None) or (before and after and
                                                   abs(after - before) > 0.1 * before):
            self._on_status(self.grabber.status)  # viewers see the sampling start or stop

    @property
    def threshold(self) -> float | None:
        if self.camera.threshold is not None:
            return self.camera.threshold
        return self.live.calibration.threshold if self.live.calibration else None

    def _on_status(self, status: CameraStatus) -> None:
        shown = self.status  # 'learning' where the baseline is not learned yet
        self.s.metrics.camera_up.labels(self.camera.id).set(1 if status.state == "live" else 0)
        self.s.metrics.set_camera_state(self.camera.id, shown.state)
        self.s.hub.publish(StatusMessage(camera=self.camera.id, state=shown.state,
                                         reason=shown.reason, since=shown.since))

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self.clips is not None:
            self.clips.start()
        self.grabber.start()

    def stop(self) -> None:
        self.stopped = True
        self.grabber.stop()
        self.outbox.send(self.tracker.close(time.time()))
        self.zones.close(time.time())
        if self.clips is not None:
            self.clips.stop()  # its clips in progress end with the frames they have
        # The reconstructor's caches for this camera are dropped by the inference thread
        # (inference_loop.py): reset from here raced with a call in progress (a KeyError).

    @property
    def unstored(self) -> int:
        return self.outbox.waiting + self.zones.waiting

    # -- frames in, requests out (inference thread) --------------------------------------

    def take_requests(self) -> list[ClipRequest]:
        """The camera's frames since the last call, as the clips now due for inference."""
        if self.outbox.waiting:
            self.outbox.retry()
        self.zones.retry()
        grabbed = self.grabber.queue.drain()
        self._update_counters()
        if not grabbed and self.grabber.status.state == "ended" and self.tracker.is_open:
            # A recording that ended will not calm down by itself: its alert ends with it.
            self.outbox.send(self.tracker.close(time.time()))
        if not grabbed and self.grabber.status.state == "ended" and self.zones.is_open:
            self.zones.close(time.time())
        requests = []
        for item in grabbed:
            frame, gap = self.sequencer.take(item)
            if gap:  # no clip may span a gap
                self.sequencer.forget(self.scorer.reset())
            try:
                request = self.scorer.add(frame)
            except ValueError as exc:  # a frame OpenCV decoded into an unusable shape
                log.warning("camera %s: frame %d skipped: %s", self.camera.id,
                            item.frame.index, exc)
                self.sequencer.forget([frame.index])
                self.sequencer.forget(self.scorer.reset())
                continue
            if request is not None:
                requests.append(request)
        return requests

    def lost(self, requests: list[ClipRequest]) -> None:
        """Requests whose inference failed (inference thread): their frames are dropped
        unscored and the camera goes on as after a gap (the clip window and the live score's
        warm-up start again), so no verdict comes from a cache that missed those frames."""
        for request in requests:
            self.sequencer.forget(self.scorer.drop(request))
        self.sequencer.forget(self.scorer.reset())

    def _update_counters(self) -> None:
        """Bring the per-camera Prometheus counters up to the grabber's own counts: every
        frame read (sampled out or dropped ones too), sampled out, dropped by the queue."""
        counts = {"frames_in": self.grabber.frames_in,
                  "frames_sampled_out": self.grabber.frames_sampled_out,
                  "frames_dropped": self.grabber.queue.dropped}
        if self.clips is not None:  # the clip recorder's own counts, the same way
            counts.update(clips_written=self.clips.clips_written,
                          clips_failed=self.clips.clips_failed,
                          clip_frames_dropped=self.clips.frames_dropped)
        for name, count in counts.items():
            if count > self._counted[name]:
                getattr(self.s.metrics, name).labels(self.camera.id).inc(
                    count - self._counted[name])
                self._counted[name] = count

    # -- scores in (inference thread) ----------------------------------------------------

    def handle(self, request: ClipRequest, recon: np.ndarray) -> None:
        """A request's reconstructions -> scores, alerts, viewers."""
        if self.stopped:
            return
        for score in self.scorer.score(request, recon):
            self._handle_frame(score)

    def _handle_frame(self, score: FrameScore) -> None:
        origin = self.sequencer.origin(score.index)
        if self._learning and not self.live.learning:
            self._learning = False
            log.info("camera %s learned its baseline: %s", self.camera.id,
                     self.live.calibration)
            self._on_status(self.grabber.status)  # 'learning' -> 'live' for the viewers
        threshold = self.threshold
        self.frames_scored += 1
        self.s.metrics.frames_scored.labels(self.camera.id).inc()
        self.last_regularity = score.regularity
        if self.clips is not None:  # before the alerts: a start finds its frame in the ring
            self.clips.add(origin.captured_at, score.image, score.error_map)
        transitions = []
        if score.regularity is not None and threshold is not None:
            transitions = self.tracker.push(ScoredFrame(
                origin.index, origin.captured_at, score.regularity, threshold,
                evidence=(score.image, score.error_map)))
        self.zones.push(score, origin.index, origin.captured_at, self.scorer)
        self.s.hub.publish(ScoreMessage(
            camera=self.camera.id, frame=origin.index, captured_at=origin.captured_at,
            regularity=score.regularity, error=score.score_error, threshold=threshold,
            alerting=self.tracker.is_open or self.zones.is_open,
            zones=self.zones.regularities(score)))
        self.outbox.send(transitions)
        self.publisher.publish(origin.index, origin.captured_at, score.image, score.error_map)

    def _alert_stored(self, started_at: float, event_id: int) -> None:
        alert = self.tracker.alert
        if alert is not None and alert.started_at == started_at:
            self.tracker.set_id(event_id)
