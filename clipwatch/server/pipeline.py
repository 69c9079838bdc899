"""Camera pipelines: grabbed frames -> clips -> one batched detector -> scores, alerts, viewers.

`CameraPipeline` owns one camera's state: its grabber, clip buffer (`ClipScorer`), live score
and alert tracker. `InferenceLoop` is the one thread that runs the model: it gathers the due
clips of every camera, reconstructs them in batches (so several cameras share each ONNX
Runtime call), and hands each camera its scores. Alerts are stored before they are broadcast.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from clipwatch.config import AlertConfig, CameraConfig, LiveConfig
from clipwatch.model.clip_scorer import ClipScorer, FrameScore
from clipwatch.model.detector import Detector
from clipwatch.model.heatmap import overlay
from clipwatch.model.live_score import LiveScorer
from clipwatch.model.sidecar import Calibration
from clipwatch.server.alerts import AlertTracker, ScoredFrame, Transition
from clipwatch.server.balance import CameraDemand, plan_rates
from clipwatch.server.event_store import EventStore, StoreError, alert_message
from clipwatch.server.grabber import CameraStatus, Grabber
from clipwatch.server.hub import Hub, LiveFrame
from clipwatch.server.metrics import Metrics
from clipwatch.stream.clip_buffer import Clip
from clipwatch.stream.sources import mask_url

log = logging.getLogger(__name__)

MAX_UNSTORED = 10_000  # alert messages a camera holds while the store refuses them


@dataclass
class Services:
    """What every camera pipeline shares."""

    detector: Detector  # the shipped graph, sidecar and input spec
    reconstructor: Any  # the inference variant run live (model/reconstructors.py)
    store: EventStore
    hub: Hub
    metrics: Metrics
    alerts: AlertConfig
    live: LiveConfig
    jpeg_quality: int
    wake: threading.Event  # set by grabbers when frames arrive


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class CameraPipeline:
    def __init__(self, camera: CameraConfig, services: Services) -> None:
        self.camera = camera
        self.s = services
        detector = services.detector
        scoring = detector.sidecar.scoring
        calibration = detector.sidecar.calibration
        false_alarm_rate = calibration.false_alarm_rate if calibration else 0.01
        if camera.calibration is not None:
            calibration = Calibration(
                e_lo=camera.calibration.e_lo, e_hi=camera.calibration.e_hi,
                threshold=camera.calibration.threshold, false_alarm_rate=false_alarm_rate,
                data=f"camera {camera.id} config", frames=0, scoring=scoring)
        self.scorer = ClipScorer(detector, stride=camera.stride, keep_maps=True,
                                 patch=scoring.patch,
                                 clip_length=services.reconstructor.clip_length_override)
        self.live = LiveScorer(scoring, calibration, camera.baseline_frames, false_alarm_rate,
                               warmup_frames=detector.input_spec.clip_length - 1)
        self.tracker = AlertTracker(camera.id, services.alerts)
        # Transitions the store refused, oldest first, with their images; event ids of
        # alerts by start time, for updates queued before their start was stored.
        self._unstored: list[tuple[Transition, dict[str, bytes] | None]] = []
        self._event_ids: dict[float, int] = {}
        self._unstored_logged = False
        # The grabber's own counts, and how much of each the metrics have been told.
        self._counted = {"frames_in": 0, "frames_sampled_out": 0, "frames_dropped": 0}
        self.frames_scored = 0
        self.stopped = False  # set when removed: a clip still in flight is then discarded
        self._last: tuple[int, int] | None = None  # (segment, seq) of the last frame buffered
        # Frames enter the clip scorer under a sequence number of their own, unique across
        # reconnects and loops (source indices restart there): seq -> (index, capture time).
        # The first frame after a gap also restarts the live score (warm-up, trailing mean);
        # marked here because clips from before the gap may still be scored after it is seen.
        self._seq = 0
        self._frames: dict[int, tuple[int, float, bool]] = {}
        self._after_gap = False
        self.last_regularity: float | None = None
        self.grabber = Grabber(camera, services.live.frame_queue, on_frame=services.wake.set,
                               on_status=self._on_status)

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
        self.s.hub.publish({"type": "status", "camera": self.camera.id, **shown.to_dict()})

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.grabber.start()

    def stop(self) -> None:
        self.stopped = True
        self.grabber.stop()
        self._store_and_broadcast(self.tracker.close(time.time()))

    # -- frames in, clips out (inference thread) ----------------------------------------

    def take_clips(self) -> list[Clip]:
        if self._unstored:
            self.retry_unstored()
        clips = []
        grabbed = self.grabber.queue.drain()
        self._update_counters()
        if not grabbed and self.grabber.status.state == "ended" and self.tracker.is_open:
            # A recording that ended will not calm down by itself: its alert ends with it.
            self._store_and_broadcast(self.tracker.close(time.time()))
        for item in grabbed:
            key = (item.segment, item.seq)  # sampled-out frames are no gap; queue drops are
            if self._last is not None and (key[0] != self._last[0] or key[1] != self._last[1] + 1):
                # A gap (dropped frames, a reconnect, a loop): no clip may span it.
                self._reset()
            self._last = key
            self._seq += 1
            self._frames[self._seq] = (item.frame.index, item.captured_at, self._after_gap)
            self._after_gap = False
            try:
                clip = self.scorer.add(item.frame._replace(index=self._seq))
            except ValueError as exc:  # a frame OpenCV decoded into an unusable shape
                log.warning("camera %s: frame %d skipped: %s", self.camera.id,
                            item.frame.index, exc)
                self._frames.pop(self._seq)
                self._reset()
                continue
            if clip is not None:
                clips.append(clip)
        return clips

    def _update_counters(self) -> None:
        """Bring the per-camera Prometheus counters up to the grabber's own counts: every
        frame read (sampled out or dropped ones too), sampled out, dropped by the queue."""
        counts = {"frames_in": self.grabber.frames_in,
                  "frames_sampled_out": self.grabber.frames_sampled_out,
                  "frames_dropped": self.grabber.queue.dropped}
        for name, count in counts.items():
            if count > self._counted[name]:
                getattr(self.s.metrics, name).labels(self.camera.id).inc(
                    count - self._counted[name])
                self._counted[name] = count

    def _reset(self) -> None:
        for seq in self.scorer.reset():
            self._frames.pop(seq, None)
        self._after_gap = True

    def handle(self, clip: Clip, recon_new: np.ndarray) -> None:
        """Scores of one clip's new frames (their reconstructions) -> live scores, alerts,
        viewers."""
        if self.stopped:
            return
        for score in self.scorer.score_new(clip, recon_new):
            self._handle_frame(score)

    def _handle_frame(self, score: FrameScore) -> None:
        camera = self.camera.id
        index, captured_at, after_gap = self._frames.pop(score.index)
        if after_gap:
            self.live.reset()
        was_learning = self.live.learning
        live = self.live.push(score.error)
        if was_learning and not self.live.learning:
            log.info("camera %s learned its baseline: %s", camera, self.live.calibration)
            self._on_status(self.grabber.status)  # 'learning' -> 'live' for the viewers
        threshold = self.threshold
        self.frames_scored += 1
        self.s.metrics.frames_scored.labels(camera).inc()
        self.last_regularity = live.regularity
        transitions: list[Transition] = []
        if live.regularity is not None and threshold is not None:
            transitions = self.tracker.push(ScoredFrame(
                index, captured_at, live.regularity, threshold,
                evidence=(score.image, score.error_map)))
        self.s.hub.publish({
            "type": "score", "camera": camera, "frame": index, "captured_at": captured_at,
            "regularity": live.regularity, "error": live.error, "threshold": threshold,
            "alerting": self.tracker.is_open})
        self._store_and_broadcast(transitions)
        self._publish_frame(score, index, captured_at)

    def _publish_frame(self, score: FrameScore, index: int, captured_at: float) -> None:
        want_plain, want_overlay = self.s.hub.wants_frames(self.camera.id)
        if score.image is None or not (want_plain or want_overlay):
            return
        quality = self.s.jpeg_quality
        plain = encode_jpeg(score.image, quality) if want_plain else None
        over = None
        if want_overlay and score.error_map is not None:
            over = encode_jpeg(overlay(score.image, score.error_map), quality)
        self.s.hub.publish_frame(LiveFrame(self.camera.id, index, captured_at, plain,
                                           over))

    def _store_and_broadcast(self, transitions: list[Transition]) -> None:
        """Store each transition, then broadcast it. One the store refuses (disk full, folder
        gone) waits, in order, and is retried on every later call: alerts are never dropped
        and never broadcast before they are stored."""
        for transition in transitions:
            images = None
            if transition.worst is not None:
                image, error_map = transition.worst
                images = {"snapshot": encode_jpeg(image, self.s.jpeg_quality)}
                if error_map is not None:
                    images["heatmap"] = encode_jpeg(overlay(image, error_map),
                                                    self.s.jpeg_quality)
            if len(self._unstored) >= MAX_UNSTORED:
                log.error("camera %s: %d alert messages wait for the store; dropping the "
                          "oldest", self.camera.id, len(self._unstored))
                self._unstored.pop(0)
            self._unstored.append((transition, images))
        self.retry_unstored()

    @property
    def unstored(self) -> int:
        return len(self._unstored)

    def retry_unstored(self) -> None:
        while self._unstored:
            transition, images = self._unstored[0]
            alert = transition.alert
            if alert.id is None and transition.kind != "start":
                # Its start was stored late (it waited too): the event id is known by now.
                alert = replace(alert, id=self._event_ids.get(alert.started_at))
            try:
                seq, event = self.s.store.record(transition.kind, alert, images)
            except StoreError as exc:
                if not self._unstored_logged:  # once per failing streak, not every retry
                    log.error("%s (kept; retried until the store takes it)", exc)
                    self._unstored_logged = True
                return
            self._unstored.pop(0)
            self._unstored_logged = False
            if transition.kind == "start":
                self._event_ids[alert.started_at] = event["id"]
                if self.tracker.alert is not None and \
                        self.tracker.alert.started_at == alert.started_at:
                    self.tracker.set_id(event["id"])
                self.s.metrics.alerts.labels(self.camera.id).inc()
            self.s.hub.publish(alert_message(seq, transition.kind, event))


class InferenceLoop:
    """The one thread that runs the detector over the due clips of every camera."""

    def __init__(self, services: Services,
                 pipelines: Callable[[], list[CameraPipeline]]) -> None:
        self.s = services
        self._pipelines = pipelines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self.error: str | None = None
        self.seconds_per_clip: float | None = None  # measured, smoothed
        self._balanced_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.s.wake.set()
        self._thread.join(10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.s.wake.wait(0.5)
            self.s.wake.clear()
            try:
                self.run_once()
            except Exception as exc:  # keep scoring the other cameras; readiness shows it
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("inference loop failed; continuing")

    def run_once(self) -> int:
        """Score every clip that is due now; returns how many."""
        work: list[tuple[CameraPipeline, Clip]] = []
        pipelines = self._pipelines()
        for pipeline in pipelines:
            pipeline.grabber.check_stall()
            work.extend((pipeline, clip) for clip in pipeline.take_clips())
        started_all = time.perf_counter()
        self._score(work)
        if work:
            spc = (time.perf_counter() - started_all) / len(work)
            self.seconds_per_clip = spc if self.seconds_per_clip is None else \
                0.8 * self.seconds_per_clip + 0.2 * spc
        if time.monotonic() - self._balanced_at >= 1.0:
            self._balanced_at = time.monotonic()
            balance_cameras(pipelines, self.seconds_per_clip)
        return len(work)

    def _score(self, work: list[tuple[CameraPipeline, Clip]]) -> None:
        size = self.s.detector.options.max_batch
        for start in range(0, len(work), size):
            chunk = work[start:start + size]
            started = time.perf_counter()
            recons = self.s.reconstructor.new_frames([(p.scorer, clip) for p, clip in chunk])
            self.s.metrics.inference_seconds.observe(time.perf_counter() - started)
            self.s.metrics.batch_clips.observe(len(chunk))
            for (pipeline, clip), recon in zip(chunk, recons, strict=True):
                pipeline.handle(clip, recon)


def balance_cameras(pipelines: list[CameraPipeline], seconds_per_clip: float | None) -> None:
    """Apply `plan_rates` (balance.py) to the live cameras."""
    live = {p.camera.id: p for p in pipelines
            if p.grabber.fps_in and p.grabber.status.state == "live"}
    demands = [CameraDemand(cid, p.grabber.fps_in, p.scorer.buffer.stride,
                            p.grabber.sample_fps is not None) for cid, p in live.items()]
    for camera, rate in plan_rates(demands, seconds_per_clip).items():
        live[camera].limit_rate(rate)


def camera_view(pipeline: CameraPipeline | None, camera: CameraConfig) -> dict[str, Any]:
    """A camera as the API shows it: its config (credentials masked) and live state."""
    view = camera.model_dump(mode="json")
    view["source"] = mask_url(camera.source)
    if pipeline is None:
        status = CameraStatus("stopped", "disabled", time.time())
        view.update(fps_in=None, sampled_fps=None, frames_sampled_out=0,
                    status=status.to_dict(), effective_threshold=camera.threshold,
                    frames_in=0, frames_scored=0, frames_dropped=0, regularity=None,
                    active_calibration=None)
        return view
    cal = pipeline.live.calibration
    view.update(
        fps_in=pipeline.grabber.fps_in, sampled_fps=pipeline.grabber.sample_fps,
        frames_sampled_out=pipeline.grabber.frames_sampled_out,
        status=pipeline.status.to_dict(), effective_threshold=pipeline.threshold,
        frames_in=pipeline.grabber.frames_in, frames_scored=pipeline.frames_scored,
        frames_dropped=pipeline.grabber.queue.dropped, regularity=pipeline.last_regularity,
        active_calibration=None if cal is None else
        {"e_lo": cal.e_lo, "e_hi": cal.e_hi, "threshold": cal.threshold, "data": cal.data})
    return view
