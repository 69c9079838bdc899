"""Prometheus metrics of the live service, on a registry of its own (one per app, so tests
can build several apps in one process).

Per camera: frames in, frames scored, frames dropped (queue full), alerts opened; the
inference latency (one batched ONNX Runtime call) and the frame-to-viewer latency (capture
to the frame leaving for a websocket client); event clips written, lost, and frames their
recorder dropped. Per alert sink: messages delivered, failed
tries, messages skipped past its bound, its backlog and the delivery latency.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CAMERA_STATES = ("connecting", "learning", "live", "lost", "ended", "stopped")
# Seconds; live scoring of a 10 fps camera should stay well inside a second.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter("clipwatch_frames_in", "Frames read from the camera",
                                 ["camera"], registry=r)
        self.frames_scored = Counter("clipwatch_frames_scored", "Frames given a score",
                                     ["camera"], registry=r)
        self.frames_dropped = Counter("clipwatch_frames_dropped",
                                      "Frames dropped because scoring fell behind", ["camera"],
                                      registry=r)
        self.frames_sampled_out = Counter(
            "clipwatch_frames_sampled_out", "Frames skipped evenly because the camera is "
            "faster than scoring can follow", ["camera"], registry=r)
        self.alerts = Counter("clipwatch_alerts", "Alerts opened", ["camera"], registry=r)
        self.camera_up = Gauge("clipwatch_camera_live", "1 while the camera delivers frames",
                               ["camera"], registry=r)
        self.camera_state = Gauge("clipwatch_camera_state", "1 for the camera's current state "
                                  "(connecting, learning, live, lost, ended, stopped)",
                                  ["camera", "state"], registry=r)
        self.inference_seconds = Histogram("clipwatch_inference_seconds",
                                           "One batched inference call", buckets=_LATENCY_BUCKETS,
                                           registry=r)
        self.batch_clips = Histogram("clipwatch_batch_clips", "Clips per inference call",
                                     buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.frame_to_viewer_seconds = Histogram(
            "clipwatch_frame_to_viewer_seconds",
            "Capture of a frame to it being sent to a websocket client", ["camera"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self.ws_clients = Gauge("clipwatch_websocket_clients", "Connected websocket clients",
                                registry=r)
        self.ws_frames_dropped = Counter("clipwatch_websocket_frames_dropped",
                                         "Live frames a slow client skipped", registry=r)

        self.clips_written = Counter("clipwatch_clips_written", "Event clips written and "
                                     "attached to their alert", ["camera"], registry=r)
        self.clips_failed = Counter("clipwatch_clips_failed", "Event clips lost (the clips "
                                    "folder could not be written)", ["camera"], registry=r)
        self.clip_frames_dropped = Counter("clipwatch_clip_frames_dropped", "Frames the clip "
                                           "recorder's full queue refused", ["camera"],
                                           registry=r)

        self.sink_delivered = Counter("clipwatch_sink_delivered", "Alert messages an alert "
                                      "sink accepted (webhook 2xx, MQTT PUBACK)", ["sink"],
                                      registry=r)
        self.sink_failures = Counter("clipwatch_sink_failures", "Failed delivery tries (each "
                                     "is retried)", ["sink"], registry=r)
        self.sink_skipped = Counter("clipwatch_sink_skipped", "Alert messages a sink never "
                                    "got: it was further behind than its bound", ["sink"],
                                    registry=r)
        self.sink_backlog = Gauge("clipwatch_sink_backlog", "Alert messages waiting for the "
                                  "sink", ["sink"], registry=r)
        self.sink_delivery_seconds = Histogram(
            "clipwatch_sink_delivery_seconds", "An alert message stored to the sink accepting "
            "it", ["sink"], buckets=_LATENCY_BUCKETS + (10.0, 30.0, 60.0, 300.0), registry=r)

    def forget_sink(self, sink: str) -> None:
        for metric in (self.sink_delivered, self.sink_failures, self.sink_skipped,
                       self.sink_backlog, self.sink_delivery_seconds):
            with contextlib.suppress(KeyError):
                metric.remove(sink)

    def set_camera_state(self, camera: str, state: str) -> None:
        for name in CAMERA_STATES:
            self.camera_state.labels(camera, name).set(1 if name == state else 0)

    def forget_camera(self, camera: str) -> None:
        """Drop a removed camera's series, so /metrics does not list it forever."""
        for metric in (self.frames_in, self.frames_scored, self.frames_dropped,
                       self.frames_sampled_out, self.alerts,
                       self.camera_up, self.frame_to_viewer_seconds, self.clips_written,
                       self.clips_failed, self.clip_frames_dropped):
            with contextlib.suppress(KeyError):  # the camera never produced that series
                metric.remove(camera)
        for name in CAMERA_STATES:
            with contextlib.suppress(KeyError):
                self.camera_state.remove(camera, name)
