"""Service: the running live service, owning the detector, event store, hub and pipelines.

It is built from a `Config`, started and stopped by the app's lifespan, and is the one place
cameras are added, changed or removed at run time (the REST API calls it); when the config
came from a file, every such change is written back to that file.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from clipwatch.config import CameraConfig, Config, save_config
from clipwatch.errors import ClipwatchError
from clipwatch.model.detector import DetectorOptions
from clipwatch.model.reconstructors import load_model
from clipwatch.server.auth import Authenticator
from clipwatch.server.camera_view import camera_view
from clipwatch.server.event_store import EventStore
from clipwatch.server.hub import Hub
from clipwatch.server.inference_loop import InferenceLoop
from clipwatch.server.memory import MemoryReleaser
from clipwatch.server.messages import CamerasMessage, alert_message
from clipwatch.server.metrics import Metrics
from clipwatch.server.pipeline import CameraPipeline, Services
from clipwatch.server.source_policy import check_api_source

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 600.0  # how often retention runs


class CameraConflict(ClipwatchError):
    """A camera with that id already exists."""


class UnknownCamera(ClipwatchError):
    """No camera has that id."""


class CameraLimit(ClipwatchError):
    """The service already holds server.max_cameras cameras."""


class Service:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.metrics = Metrics()
        self.auth = Authenticator(config.auth)
        m = config.model
        options = DetectorOptions(device=m.device, intra_op_threads=m.threads,
                                  max_batch=m.max_batch)
        self.model = load_model(m.path, options, m.variant)
        self.detector = self.model.detector
        self.store = EventStore(config.storage.dir)
        self.hub = Hub(config.live, self.metrics)
        self.services = Services(self.model, self.store, self.hub,
                                 self.metrics, config.alerts, config.live,
                                 config.storage.jpeg_quality, threading.Event())
        self.pipelines: dict[str, CameraPipeline] = {}
        # Cameras added or changed through the API in this run: their sources are checked
        # against the server's policy again at each (re)connect (a name may resolve anew).
        self.api_cameras: set[str] = set()
        self.memory = MemoryReleaser()  # a removed camera's memory goes back to the system
        self.lock = threading.RLock()  # changes (cameras, users, settings) come from API threads
        self.inference = InferenceLoop(self.services, lambda: list(self.pipelines.values()))
        self.started = False
        self._stopping = threading.Event()
        self._housekeeping = threading.Thread(target=self._keep_house, name="housekeeping",
                                              daemon=True)

    # -- life cycle ----------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            self.hub.attach(loop)
        for seq, event in self.store.close_interrupted():
            log.warning("alert %d on %s was left open by an earlier run; closed it",
                        event["id"], event["camera"])
            self.hub.publish(alert_message(seq, "end", event))
        with self.lock:
            for camera in self.config.cameras:
                if camera.enabled:
                    self._start_camera(camera)
        self.inference.start()
        self._housekeeping.start()
        self.started = True

    def stop(self) -> None:
        self._stopping.set()
        with self.lock:
            for pipeline in list(self.pipelines.values()):
                pipeline.grabber.stop(timeout=2.0)
            self.inference.stop()
            for pipeline in self.pipelines.values():
                pipeline.stop()  # closes open alerts, stored
            self.pipelines.clear()
        if self._housekeeping.is_alive():
            self._housekeeping.join(10)  # a pass in progress finishes before the store closes
        self.auth.checker.close()
        self.store.close()
        self.started = False

    def _keep_house(self) -> None:
        """Retention, at start and then every `HOUSEKEEPING_S`."""
        storage = self.config.storage
        max_bytes = None if storage.max_snapshot_mb is None else \
            int(storage.max_snapshot_mb * 1024 * 1024)
        while True:
            try:
                deleted = self.store.prune(storage.retention_days, max_bytes)
                if deleted:
                    log.info("retention: deleted %d snapshot files", deleted)
            except Exception as exc:  # a failed pass is retried next time, never fatal
                log.error("retention pass failed: %s", exc)
            if self._stopping.wait(HOUSEKEEPING_S):
                return

    def _start_camera(self, camera: CameraConfig) -> None:
        server = self.config.server
        check = (lambda source: check_api_source(source, server)) \
            if camera.id in self.api_cameras else None
        pipeline = CameraPipeline(camera, self.services, check_source=check)
        self.pipelines[camera.id] = pipeline
        pipeline.start()

    def _stop_camera(self, camera_id: str) -> None:
        pipeline = self.pipelines.pop(camera_id, None)
        if pipeline is not None:
            pipeline.stop()
            # Its frames, queue and caches are freed once its reader thread ends (at once,
            # or when an abandoned open or read returns); then the memory is handed back.
            self.memory.release_after(pipeline.grabber.join)
        self.metrics.forget_camera(camera_id)

    # -- cameras -------------------------------------------------------------------------

    def camera(self, camera_id: str) -> CameraConfig:
        for camera in self.config.cameras:
            if camera.id == camera_id:
                return camera
        raise UnknownCamera(f"no camera {camera_id!r}")

    def camera_views(self, detail: bool = False) -> list[dict[str, Any]]:
        """Every camera as the API shows it; `detail` (admins): failures' own errors."""
        return [camera_view(self.pipelines.get(c.id), c, detail) for c in self.config.cameras]

    def camera_view(self, camera_id: str, detail: bool = False) -> dict[str, Any]:
        return camera_view(self.pipelines.get(camera_id), self.camera(camera_id), detail)

    def add_camera(self, camera: CameraConfig, from_api: bool = False) -> dict[str, Any]:
        """Add a camera (refused beyond server.max_cameras). `from_api`: its source is held
        to the server's policy at each connect (the API checked it once already)."""
        with self.lock:
            if any(c.id == camera.id for c in self.config.cameras):
                raise CameraConflict(f"camera {camera.id!r} already exists")
            limit = self.config.server.max_cameras
            if len(self.config.cameras) >= limit:
                raise CameraLimit(f"the service holds {limit} cameras, its limit "
                                  "(server.max_cameras); remove one first")
            if from_api:
                self.api_cameras.add(camera.id)
            self.config.cameras.append(camera)
            self.persist()
            if camera.enabled and self.started:
                self._start_camera(camera)
            self._announce()
            return self.camera_view(camera.id, detail=True)

    def replace_camera(self, camera: CameraConfig, from_api: bool = False) -> dict[str, Any]:
        """Apply a changed camera: its pipeline restarts with the new settings."""
        with self.lock:
            old = self.camera(camera.id)
            if from_api:
                self.api_cameras.add(camera.id)
            self.config.cameras[self.config.cameras.index(old)] = camera
            self.persist()
            self._stop_camera(camera.id)
            if camera.enabled and self.started:
                self._start_camera(camera)
            self._announce()
            return self.camera_view(camera.id, detail=True)

    def remove_camera(self, camera_id: str) -> None:
        with self.lock:
            camera = self.camera(camera_id)
            self.config.cameras.remove(camera)
            self.persist()
            self._stop_camera(camera_id)
            self.api_cameras.discard(camera_id)
            self._announce()

    def persist(self) -> None:
        if self.config_path is not None:
            save_config(self.config, self.config_path)

    def _announce(self) -> None:
        self.hub.publish(CamerasMessage(cameras=self.camera_views()))

    # -- health --------------------------------------------------------------------------

    def readiness(self) -> dict[str, Any]:
        """What /readyz reports: ready when the model is loaded, scoring runs and the store
        can be written."""
        store_error = self.store.check()  # the database and the snapshot folder
        checks = {
            "model": self.detector.path.name,
            "variant": self.model.variant,
            "inference_running": self.inference.alive,
            "inference_error": self.inference.error,
            "store_writable": store_error is None,
            "store_error": store_error,
            "alerts_waiting_for_store": sum(p.unstored for p in self.pipelines.values()),
            "images_not_stored": self.store.images_not_stored,
            "cameras": {cid: p.status.state for cid, p in self.pipelines.items()},
        }
        checks["ready"] = bool(self.started and checks["inference_running"]
                               and checks["store_writable"])
        return checks
