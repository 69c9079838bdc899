"""CameraWorker: a Ray actor owning a group of cameras, headless.

Each camera runs the embedded service's own `CameraPipeline` (the source, decoding and
preprocessing, the clip window, the live score, the alert tracker and the alert outbox) and
the worker's `InferenceLoop` takes their due clips in passes, as in one process; only the
reconstructor differs: a `ServeReconstructor` (remote.py) whose work runs on the scorers.
Alerts are stored in PostgreSQL, where the web tier reads them (stored, then broadcast).

Live scores, status and frames wait in a `WorkerHub` for the web tier to take them
(`take_live`); frames are only encoded for cameras some web process watches (a lease per web
process that lapses when that process goes away).

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
START_RETRY_S = 2.0  # how often a worker that cannot start yet tries again


class WorkerHub:
    """The worker's stand-in for the web tier's `Hub`: keeps what the pipelines publish for
    `take_live`. Alerts are left out: the web tier reads them from the database.

    Each web process has its own cursor into the messages and its own watch lease (what
    frames it wants); a frame is kept (the newest per camera) until a newer one replaces
    it, so several web processes each get every frame."""

    def __init__(self, max_messages: int = MAX_LIVE_MESSAGES) -> None:
        self._lock = threading.Lock()
        self._messages: deque[tuple[int, dict[str, Any]]] = deque(maxlen=max_messages)
        self._seq = 0
        self._frames: dict[str, LiveFrame] = {}
        # web process -> camera -> (plain, overlay, lease end)
        self._watched: dict[str, dict[str, tuple[bool, bool, float]]] = {}

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
        """(plain, overlay): what some web process's live lease asks for this camera."""
        now, plain, overlay = time.monotonic(), False, False
        for leases in list(self._watched.values()):
            want_plain, want_overlay, until = leases.get(camera, (False, False, 0.0))
            if until > now:
                plain, overlay = plain or want_plain, overlay or want_overlay
        return plain, overlay

    def watch(self, owner: str, cameras: Mapping[str, tuple[bool, bool]]) -> None:
        """A web process's frames wanted, for the next `WATCH_LEASE_S` (replacing its last)."""
        until = time.monotonic() + WATCH_LEASE_S
        with self._lock:
            self._watched[owner] = {camera: (plain, overlay, until)
                                    for camera, (plain, overlay) in cameras.items()}
            now = time.monotonic()
            for gone in [o for o, leases in self._watched.items()
                         if all(u <= now for *_, u in leases.values())]:
                del self._watched[gone]

    def take(self, after: int, cameras: set[str] | None,
             frames_after: Mapping[str, int]) -> tuple[list[dict[str, Any]],
                                                       list[LiveFrame], int]:
        """Messages after `after` (scores only of `cameras`; None: all), the newest frame of
        each of them newer than `frames_after[camera]`, and the cursor to pass next time."""
        with self._lock:
            messages = [m for seq, m in self._messages if seq > after and
                        (m.get("type") != "score" or cameras is None or m["camera"] in cameras)]
            frames = [f for c, f in self._frames.items()
                      if (cameras is None or c in cameras) and f.frame != frames_after.get(c)]
            return messages, frames, self._seq


class CameraWorker:
    """The actor's class (runtime.py makes it a Ray actor with restarts).

    Its constructor only records what it was given and starts `_start_up` on a thread: a
    constructor that raised (the database or the scorers away while Ray restarts the actor)
    would leave the actor dead for good, whatever `max_restarts` says. Start-up retries
    until it succeeds; until then the cameras show 'connecting'."""

    def __init__(self, name: str, config: dict[str, Any], camera_ids: list[str]) -> None:
        from clipwatch.cluster.runtime import worker_spec

        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        self.name = name
        self.incarnation = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.spec = worker_spec(config, camera_ids)
        self.config = Config.model_validate(config)
        wanted = set(camera_ids)
        self.cameras = [c for c in self.config.cameras if c.id in wanted]
        self.hub = WorkerHub()
        self.pipelines: dict[str, CameraPipeline] = {}
        self.store = None
        self.reconstructor = None
        self.inference: InferenceLoop | None = None
        self.ready = False
        self.start_error: str | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._start_up, name="start-up", daemon=True)
        self._thread.start()

    def _start_up(self) -> None:
        while not self._stopping.is_set():
            try:
                self._start()
                self.ready, self.start_error = True, None
                return
            except Exception as exc:  # the database or the scorers away: try again
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if error != self.start_error:
                    log.warning("worker %s cannot start yet (%s); retrying", self.name, error)
                self.start_error = error
                if self.store is not None:
                    self.store.close()
                    self.store = None
            self._stopping.wait(START_RETRY_S)

    def _start(self) -> None:
        from ray import serve

        from clipwatch.cluster.remote import ServeReconstructor
        from clipwatch.cluster.scorer import SCORER_APP
        from clipwatch.model.detector import DetectorOptions
        from clipwatch.model.reconstructors import LoadedModel
        from clipwatch.server.event_store import open_event_store

        ids = [c.id for c in self.cameras]
        self.store = open_event_store(self.config)
        for seq, event in self.store.close_interrupted(cameras=ids):
            log.warning("worker %s: alert %d on %s was left open by the worker's last run "
                        "(seq %d); closed it at its last update", self.name, event["id"],
                        event["camera"], seq)
        handle = serve.get_deployment_handle("scorer", app_name=SCORER_APP)
        description = handle.describe.remote().result(timeout_s=120)
        self.reconstructor = ServeReconstructor(handle, description, session=self.name)
        options = DetectorOptions(device="cpu", max_batch=self.config.cluster.max_batch)
        model = LoadedModel(ModelFile(self.config.model.path, options), self.reconstructor,
                            description["variant"])
        services = Services(model, self.store, self.hub, Metrics(), self.config.alerts,
                            self.config.live, self.config.storage.jpeg_quality,
                            threading.Event())
        pipelines = {c.id: CameraPipeline(c, services, model=model)
                     for c in self.cameras if c.enabled}
        # No sampling down: the scorers' capacity grows with replicas, not with this worker;
        # a camera the scorers cannot keep up with drops frames (counted) instead.
        self.inference = InferenceLoop(services, lambda: list(self.pipelines.values()),
                                       balance=False)
        self.pipelines = pipelines
        for pipeline in pipelines.values():
            pipeline.start()
        self.inference.start()
        log.info("worker %s (%s) runs cameras %s on node %s", self.name, self.incarnation,
                 ", ".join(pipelines) or "none", self.node())

    @staticmethod
    def node() -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def ping(self) -> dict[str, Any]:
        inference = self.inference
        return {"name": self.name, "incarnation": self.incarnation, "node": self.node(),
                "spec": self.spec, "ready": self.ready, "start_error": self.start_error,
                "pid": os.getpid(), "started_at": self.started_at,
                "cameras": sorted(c.id for c in self.cameras),
                "inference_running": inference is not None and inference.alive,
                "inference_error": inference.error if inference is not None else None}

    def take_live(self, owner: str, incarnation: str, after: int, cameras: list[str] | None,
                  frames: dict[str, tuple[bool, bool]] | None = None,
                  frames_after: dict[str, int] | None = None) -> dict[str, Any]:
        """For web process `owner`: the messages after its cursor (scores only of the
        `cameras` it shows; its cursor counts from 0 again when the worker it read from was
        another incarnation), the newest frame of the cameras it watches, and the views."""
        self.hub.watch(owner, frames or {})
        if incarnation != self.incarnation:
            after = 0
        messages, live_frames, cursor = self.hub.take(
            after, None if cameras is None else set(cameras), frames_after or {})
        return {"incarnation": self.incarnation, "cursor": cursor, "messages": messages,
                "frames": live_frames, "views": self.views(detail=True),
                "public_views": self.views(detail=False)}

    def views(self, detail: bool = False) -> list[dict[str, Any]]:
        views = []
        for camera in self.cameras:
            view = camera_view(self.pipelines.get(camera.id), camera, detail,
                               self._frame_size(camera.id))
            if not self.ready and camera.enabled:
                view["status"] = {"state": "connecting", "since": self.started_at,
                                  "reason": "its camera worker is starting" +
                                  (f" ({self.start_error})" if detail and self.start_error
                                   else "")}
            views.append(view)
        return views

    def _frame_size(self, camera_id: str) -> tuple[int, int] | None:
        pipeline = self.pipelines.get(camera_id)
        return pipeline.scorer.frame_size if pipeline is not None else None

    def counts(self) -> dict[str, Any]:
        """Per camera: frames scored, alerts waiting for the store, scorer calls that failed
        and misses (tests and `clipwatch cluster status` read them); empty until started."""
        recon = self.reconstructor
        return {cid: {"frames_scored": p.frames_scored, "unstored": p.unstored,
                      "failed_calls": recon.failed_calls[cid], "misses": recon.misses[cid],
                      "state": p.status.state}
                for cid, p in list(self.pipelines.items())}

    def stop(self) -> None:
        """Stop the cameras, closing their open alerts (stored): a planned shutdown."""
        self._stopping.set()
        self._thread.join(START_RETRY_S + 5)
        for pipeline in self.pipelines.values():
            pipeline.grabber.stop(timeout=2.0)
        if self.inference is not None:
            self.inference.stop()
        for pipeline in self.pipelines.values():
            pipeline.stop()
        self.pipelines = {}
        if self.store is not None:
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
