"""CameraWorker: a Ray actor owning a group of cameras, headless.

Each camera runs the embedded service's own `CameraPipeline` (the source, decoding and
preprocessing, the clip window, the live score, the alert tracker and the alert outbox) and
the worker's `InferenceLoop` takes their due clips in passes, as in one process; only the
reconstructor differs: a `ServeReconstructor` (remote.py) whose work runs on the scorers.
Alerts are stored in PostgreSQL, where the web tier reads them (stored, then broadcast).

Live scores, status and frames wait in a `WorkerHub` for the web tier to take them
(`take_live`); frames are only encoded for cameras some web process watches (a lease that
lapses when that process goes away).

When its node dies, Ray restarts the actor elsewhere with the same arguments: it closes the
alerts its cameras had open at their last stored update (`close_interrupted`) and starts the
cameras again; the clip window's warm-up and the live score's own warm-up keep the first
frames after a restart from raising an alert.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from clipwatch.config import Config
from clipwatch.server.camera_view import camera_view
from clipwatch.server.hub import LiveFrame
from clipwatch.server.inference_loop import InferenceLoop
from clipwatch.server.messages import to_wire
from clipwatch.server.metrics import Metrics
from clipwatch.server.pipeline import CameraPipeline, Services

log = logging.getLogger(__name__)

WATCH_LEASE_S = 5.0  # frames stay encoded this long after a web process last asked for them
MAX_LIVE_MESSAGES = 20_000  # score and status messages kept for the web tier to take


class WorkerHub:
    """The worker's stand-in for the web tier's `Hub`: keeps what the pipelines publish for
    `take_live`. Alerts are left out: the web tier reads them from the database."""

    def __init__(self, max_messages: int = MAX_LIVE_MESSAGES) -> None:
        self._lock = threading.Lock()
        self._messages: deque[tuple[int, dict[str, Any]]] = deque(maxlen=max_messages)
        self._seq = 0
        self._frames: dict[str, LiveFrame] = {}
        self._watched: dict[str, tuple[bool, bool, float]] = {}  # camera -> plain, overlay, until

    def publish(self, message: Any) -> None:
        wire = to_wire(message)
        if wire.get("type") == "alert":
            return
        with self._lock:
            self._seq += 1
            self._messages.append((self._seq, wire))

    def publish_frame(self, frame: LiveFrame) -> None:
        with self._lock:
            self._frames[frame.camera] = frame

    def wants_frames(self, camera: str) -> tuple[bool, bool]:
        plain, overlay, until = self._watched.get(camera, (False, False, 0.0))
        return (plain, overlay) if until > time.monotonic() else (False, False)

    def watch(self, cameras: Mapping[str, tuple[bool, bool]]) -> None:
        until = time.monotonic() + WATCH_LEASE_S
        with self._lock:
            for camera, (plain, overlay) in cameras.items():
                self._watched[camera] = (plain, overlay, until)

    def take(self, after: int, cameras: set[str] | None) -> tuple[list[dict[str, Any]],
                                                                   list[LiveFrame], int]:
        """Messages after `after` (scores only of `cameras`; None: all), the newest frame of
        each of them, and the cursor to pass next time."""
        with self._lock:
            messages = [m for seq, m in self._messages if seq > after and
                        (m.get("type") != "score" or cameras is None or m["camera"] in cameras)]
            frames = [f for c, f in self._frames.items() if cameras is None or c in cameras]
            self._frames = {c: f for c, f in self._frames.items() if f not in frames}
            return messages, frames, self._seq


class CameraWorker:
    """The actor's class (runtime.py makes it a Ray actor with restarts)."""

    def __init__(self, name: str, config: dict[str, Any], camera_ids: list[str]) -> None:
        from ray import serve

        from clipwatch.cluster.remote import ServeReconstructor
        from clipwatch.cluster.runtime import worker_spec
        from clipwatch.cluster.scorer import SCORER_APP
        from clipwatch.model.detector import DetectorOptions
        from clipwatch.model.reconstructors import LoadedModel
        from clipwatch.server.event_store import open_event_store

        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        self.name = name
        self.incarnation = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.spec = worker_spec(config, camera_ids)
        self.config = Config.model_validate(config)
        wanted = set(camera_ids)
        self.cameras = [c for c in self.config.cameras if c.id in wanted]
        self.store = open_event_store(self.config)
        for seq, event in self.store.close_interrupted(cameras=camera_ids):
            log.warning("worker %s: alert %d on %s was left open by the worker's last run "
                        "(seq %d); closed it at its last update", name, event["id"],
                        event["camera"], seq)
        handle = serve.get_deployment_handle("scorer", app_name=SCORER_APP)
        description = handle.describe.remote().result(timeout_s=120)
        self.reconstructor = ServeReconstructor(handle, description, session=name)
        options = DetectorOptions(device="cpu", max_batch=self.config.cluster.max_batch)
        self.model = LoadedModel(ModelFile(self.config.model.path, options),
                                 self.reconstructor, description["variant"])
        self.hub = WorkerHub()
        self.services = Services(self.model, self.store, self.hub, Metrics(),
                                 self.config.alerts, self.config.live,
                                 self.config.storage.jpeg_quality, threading.Event())
        self.pipelines = {c.id: CameraPipeline(c, self.services, model=self.model)
                          for c in self.cameras if c.enabled}
        # No sampling down: the scorers' capacity grows with replicas, not with this worker;
        # a camera the scorers cannot keep up with drops frames (counted) instead.
        self.inference = InferenceLoop(self.services, lambda: list(self.pipelines.values()),
                                       balance=False)
        for pipeline in self.pipelines.values():
            pipeline.start()
        self.inference.start()
        log.info("worker %s (%s) runs cameras %s on node %s", name, self.incarnation,
                 ", ".join(self.pipelines) or "none", self.node())

    @staticmethod
    def node() -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def ping(self) -> dict[str, Any]:
        return {"name": self.name, "incarnation": self.incarnation, "node": self.node(),
                "spec": self.spec,
                "pid": os.getpid(), "started_at": self.started_at,
                "cameras": sorted(self.pipelines), "inference_running": self.inference.alive,
                "inference_error": self.inference.error}

    def take_live(self, after: int, cameras: list[str] | None,
                  frames: dict[str, tuple[bool, bool]] | None = None) -> dict[str, Any]:
        """For a web process: the messages after its cursor (scores only of the `cameras`
        it shows), the newest frame of the cameras it watches, and the camera views."""
        if frames:
            self.hub.watch(frames)
        messages, live_frames, cursor = self.hub.take(after, None if cameras is None
                                                      else set(cameras))
        return {"incarnation": self.incarnation, "cursor": cursor, "messages": messages,
                "frames": live_frames, "views": self.views(detail=True)}

    def views(self, detail: bool = False) -> list[dict[str, Any]]:
        return [camera_view(self.pipelines.get(c.id), c, detail, self._frame_size(c.id))
                for c in self.cameras]

    def _frame_size(self, camera_id: str) -> tuple[int, int] | None:
        pipeline = self.pipelines.get(camera_id)
        return pipeline.scorer.frame_size if pipeline is not None else None

    def counts(self) -> dict[str, Any]:
        """Per camera: frames scored, alerts waiting for the store, scorer calls that failed
        and misses (tests and the bench read them)."""
        return {cid: {"frames_scored": p.frames_scored, "unstored": p.unstored,
                      "failed_calls": self.reconstructor.failed_calls[cid],
                      "misses": self.reconstructor.misses[cid],
                      "state": p.status.state}
                for cid, p in self.pipelines.items()}

    def stop(self) -> None:
        """Stop the cameras, closing their open alerts (stored): a planned shutdown."""
        for pipeline in self.pipelines.values():
            pipeline.grabber.stop(timeout=2.0)
        self.inference.stop()
        for pipeline in self.pipelines.values():
            pipeline.stop()
        self.pipelines.clear()
        self.store.close()


class ModelFile:
    """What a camera pipeline reads of its model's `Detector` when the model itself runs on
    the scorers: its path, the options, the sidecar (input spec, scoring, calibration)."""

    def __init__(self, path, options) -> None:
        from pathlib import Path

        from clipwatch.model.sidecar import read_sidecar

        self.path = Path(path)
        self.options = options
        self.sidecar = read_sidecar(self.path)
