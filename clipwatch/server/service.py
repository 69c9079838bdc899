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
from clipwatch.server.auth import Authenticator
from clipwatch.server.camera_view import camera_view
from clipwatch.server.event_store import open_event_store
from clipwatch.server.hub import Hub
from clipwatch.server.inference_loop import InferenceLoop
from clipwatch.server.learning import JobSpec, LearningJobs
from clipwatch.server.memory import MemoryReleaser
from clipwatch.server.messages import (
    CamerasMessage,
    LearningMessage,
    RecordingMessage,
    alert_message,
)
from clipwatch.server.metrics import Metrics
from clipwatch.server.models import ModelRegistry
from clipwatch.server.pipeline import CameraPipeline, Services
from clipwatch.server.recordings import RecordingManager
from clipwatch.server.sinks import SinkManager
from clipwatch.server.source_policy import check_api_source

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 600.0  # how often retention runs
CLIP_FINISH_S = 10.0  # at shutdown, how long a camera's clips in progress may take to finish


class CameraConflict(ClipwatchError):
    """A camera with that id already exists."""


class UnknownCamera(ClipwatchError):
    """No camera has that id."""


class CameraLimit(ClipwatchError):
    """The service already holds server.max_cameras cameras."""


class CameraNotRunning(ClipwatchError):
    """The camera is disabled: it has no frames to record."""


class NoPreviousModel(ClipwatchError):
    """The camera never changed its model in this config: nothing to roll back to."""


class NotInClusterMode(ClipwatchError):
    """What the request asks is not available in cluster mode (its cameras come from the
    site config; recordings and learning run in the embedded mode)."""


class Service:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.metrics = Metrics()
        self.auth = Authenticator(config.auth)
        self.models = ModelRegistry(config.model)
        self.model = self.models.default
        self.detector = self.model.detector
        for camera in config.cameras:  # a camera's own model that cannot load stops the start
            self.models.for_camera(camera)
        self.store = open_event_store(config)
        self.hub = Hub(config.live, self.metrics)
        storage = config.storage
        self.recordings = RecordingManager(
            storage.dir, None if storage.max_recording_mb is None else
            int(storage.max_recording_mb * 1024 * 1024),
            lambda view: self.hub.publish(RecordingMessage(recording=view)))
        self.learning = LearningJobs(storage.dir, self.models.folder, config.learning.threads,
                                     config.learning.nice,
                                     lambda view: self.hub.publish(LearningMessage(job=view)),
                                     self._cameras_behind)
        self.services = Services(self.model, self.store, self.hub,
                                 self.metrics, config.alerts, config.live,
                                 config.storage.jpeg_quality, threading.Event(),
                                 self.recordings)
        self.pipelines: dict[str, CameraPipeline] = {}
        self.frame_sizes: dict[str, tuple[int, int]] = {}  # kept across a camera's restarts
        # Cameras added or changed through the API in this run: their sources are checked
        # against the server's policy again at each (re)connect (a name may resolve anew).
        self.api_cameras: set[str] = set()
        self.memory = MemoryReleaser()  # a removed camera's memory goes back to the system
        self.lock = threading.RLock()  # changes (cameras, users, settings) come from API threads
        self.sinks = SinkManager(config, self.store, self.metrics, self.lock, self.persist)
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
        self.recordings.start(self._input_spec_of)
        self.learning.start(self.recordings.folder)
        self.inference.start()
        self._housekeeping.start()
        self.sinks.start()
        self.started = True

    def stop(self) -> None:
        self._stopping.set()
        self.learning.stop()  # the child checkpoints; the next start resumes it
        with self.lock:
            for pipeline in list(self.pipelines.values()):
                pipeline.grabber.stop(timeout=2.0)
            self.inference.stop()
            for pipeline in self.pipelines.values():
                pipeline.stop()  # closes open alerts, stored
            for pipeline in self.pipelines.values():
                if pipeline.clips is not None:  # their clips in progress end and are attached
                    pipeline.clips.join(CLIP_FINISH_S)
            self.pipelines.clear()
        self.recordings.stop()  # after the pipelines: their last frames are stored
        self.sinks.stop()  # after the pipelines: the alerts they closed go out first
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
        max_clip_bytes = None if storage.max_clip_mb is None else \
            int(storage.max_clip_mb * 1024 * 1024)
        while True:
            try:
                deleted = self.store.prune(storage.retention_days, max_bytes,
                                           max_clip_bytes=max_clip_bytes)
                if deleted:
                    log.info("retention: deleted %d snapshot and clip files", deleted)
            except Exception as exc:  # a failed pass is retried next time, never fatal
                log.error("retention pass failed: %s", exc)
            if self._stopping.wait(HOUSEKEEPING_S):
                return

    def _start_camera(self, camera: CameraConfig) -> None:
        server = self.config.server
        check = (lambda source: check_api_source(source, server)) \
            if camera.id in self.api_cameras else None
        pipeline = CameraPipeline(camera, self.services, check_source=check,
                                  model=self.models.for_camera(camera))
        self.pipelines[camera.id] = pipeline
        pipeline.start()

    def _stop_camera(self, camera_id: str) -> None:
        self.frame_size(camera_id)  # remembered for the next pipeline's polygons
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
        return [camera_view(self.pipelines.get(c.id), c, detail, self.frame_size(c.id))
                for c in self.config.cameras]

    def camera_view(self, camera_id: str, detail: bool = False) -> dict[str, Any]:
        return camera_view(self.pipelines.get(camera_id), self.camera(camera_id), detail,
                           self.frame_size(camera_id))

    def input_size(self, camera_id: str) -> int:
        """The side of the square input the camera's model scores (masks are rasterized
        at it)."""
        pipeline = self.pipelines.get(camera_id)
        model = pipeline.model if pipeline is not None else self.model
        return model.sidecar.input_spec.size

    def frame_size(self, camera_id: str) -> tuple[int, int] | None:
        """(width, height) of the camera's frames as the service reads them (masks and zones
        are drawn on them): its last frame's, in this run; None before its first."""
        pipeline = self.pipelines.get(camera_id)
        size = pipeline.scorer.frame_size if pipeline is not None else None
        if size is not None:
            self.frame_sizes[camera_id] = size
        return self.frame_sizes.get(camera_id)

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
            self.models.for_camera(camera)  # ModelRefused (422) before anything changes
            if from_api:
                self.api_cameras.add(camera.id)
            self.config.cameras.append(camera)
            self.persist()
            if camera.enabled and self.started:
                self._start_camera(camera)
            self._announce()
            return self.camera_view(camera.id, detail=True)

    def replace_camera(self, camera: CameraConfig, from_api: bool = False) -> dict[str, Any]:
        """Apply a changed camera: its pipeline restarts with the new settings (a new model
        too: a new clip window and warm-up; its alerts stay in the history). A model that
        cannot load is refused (ModelRefused) and the camera keeps running as it was."""
        with self.lock:
            old = self.camera(camera.id)
            self.models.for_camera(camera)
            if camera.model != old.model:  # what a rollback goes back to
                camera = camera.model_copy(update={
                    "previous_model": "default" if old.model is None else str(old.model)})
            if from_api:
                self.api_cameras.add(camera.id)
            self.config.cameras[self.config.cameras.index(old)] = camera
            self.persist()
            self._stop_camera(camera.id)
            if camera.enabled and self.started:
                self._start_camera(camera)
            self.models.keep_only(self.config.cameras)
            self._announce()
            return self.camera_view(camera.id, detail=True)

    def remove_camera(self, camera_id: str) -> None:
        with self.lock:
            camera = self.camera(camera_id)
            self.config.cameras.remove(camera)
            self.persist()
            self._stop_camera(camera_id)
            self.recordings.camera_removed(camera_id)
            self.api_cameras.discard(camera_id)
            self.frame_sizes.pop(camera_id, None)
            self.models.keep_only(self.config.cameras)
            self._announce()

    # -- learning a camera ---------------------------------------------------------------

    def _input_spec_of(self, camera_id: str):
        """The input spec a camera's footage is recorded at, for recordings carried on after
        a restart (None: no such camera)."""
        try:
            camera = self.camera(camera_id)
        except UnknownCamera:
            return None
        return self.models.for_camera(camera).sidecar.input_spec

    def _cameras_behind(self) -> bool:
        """Whether a live camera is sampled down: scoring cannot keep up with it now."""
        return any(p.grabber.sample_fps is not None for p in list(self.pipelines.values()))

    def start_recording(self, camera_id: str, minutes: float, spread_hours: float | None,
                        keep_alerts: bool = False) -> dict[str, Any]:
        """Record a camera's frames as normal footage (server/recordings.py)."""
        camera = self.camera(camera_id)
        pipeline = self.pipelines.get(camera_id)
        if pipeline is None:
            raise CameraNotRunning(f"camera {camera_id!r} is disabled; enable it to record")
        # The frame rate the footage is stored at: the camera's (every frame read is
        # recorded, whatever scoring samples out).
        fps = camera.fps or pipeline.grabber.fps_in or 10.0
        return self.recordings.begin(camera_id, pipeline.model.sidecar.input_spec, float(fps),
                                     minutes, spread_hours,
                                     self.config.learning.chunk_seconds, keep_alerts)

    def start_learning(self, camera_id: str, recording: str, name: str,
                       from_model: str | None, scratch: bool, train_minutes: float,
                       steps: int | None) -> dict[str, Any]:
        camera = self.camera(camera_id)
        base = self.models.resolve_api_path(from_model) if from_model else \
            self.config.model.path
        return self.learning.begin(JobSpec(
            camera=camera_id, recording=recording, name=name, from_model=str(base),
            scratch=scratch, train_minutes=train_minutes, steps=steps, scene=camera.name))

    def rollback_camera(self, camera_id: str) -> CameraConfig:
        """The camera's config with the model it ran before (NoPreviousModel: none)."""
        camera = self.camera(camera_id)
        if camera.previous_model is None:
            raise NoPreviousModel(f"camera {camera_id!r} has no previous model to go back to")
        previous = None if camera.previous_model == "default" else Path(camera.previous_model)
        return camera.model_copy(update={"model": previous, "calibration": None})

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
            "models_loaded": sorted(m.detector.path.name for m in self.models.loaded),
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
