"""The web tier in cluster mode: the same FastAPI app and viewer, with the cameras on Ray.

`ClusterService` is the embedded `Service` with three parts swapped:
- cameras run in camera workers (worker.py), placed by runtime.py; nothing is decoded or
  scored in this process;
- alerts reach viewers from the database: each message a worker stores is read back here in
  sequence order when PostgreSQL's NOTIFY says one was stored, then broadcast
  (`StoreRelay`), so every web process sends the same alerts, and a viewer resumes by
  sequence number from any of them; the hub broadcasts no alert it was handed directly
  (`StoredAlertsHub`), which keeps one order;
- live scores, status and frames come from the workers (`LiveRelay`), only for the cameras
  some viewer of this process watches.

Several web processes can serve one site: they hold no state of their own (the workers and
the database do); the alert sinks run in one of them (leadership.py). Camera changes,
recordings and learning are refused (409) in cluster mode: the site config lists the cameras.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clipwatch.cluster import runtime
from clipwatch.cluster.leadership import SinkLeadership
from clipwatch.config import CameraConfig, Config
from clipwatch.errors import ClipwatchError
from clipwatch.server.camera_view import camera_view
from clipwatch.server.hub import Hub
from clipwatch.server.service import NotInClusterMode, Service

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the workers are asked for live scores and frames
CALL_TIMEOUT_S = 5.0  # a worker that does not answer by then is shown unreachable
UNREACHABLE = {"state": "lost", "reason": "its camera worker does not answer (restarting?)"}


class StoredAlertsHub(Hub):
    """A `Hub` that broadcasts alerts only as read back from the database (`publish_stored`):
    the workers store them in another process, and a route's own copy (an acknowledgement)
    would otherwise reach viewers twice, out of sequence order."""

    def publish(self, message: Any) -> None:
        wire = message if isinstance(message, Mapping) else None
        kind = wire.get("type") if wire is not None else getattr(message, "type", None)
        if kind == "alert":
            return
        super().publish(message)

    def publish_stored(self, message: Mapping[str, Any]) -> None:
        super().publish(message)


class StoreRelay:
    """Alert messages from the database to this process's viewers, in sequence order."""

    def __init__(self, store: Any, hub: StoredAlertsHub) -> None:
        self.store = store
        self.hub = hub
        self.sent = store.last_seq()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-relay", daemon=True)

    def start(self) -> None:
        self.store.add_listener(lambda _seq: self._wake.set())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            # A NOTIFY wakes it; the timeout catches up after the database comes back.
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.relay()
            except Exception as exc:  # the database is away: the next wake catches up
                log.debug("alert relay: %s", exc)

    def relay(self) -> int:
        messages = self.store.messages_since(self.sent)
        for message in messages:
            self.hub.publish_stored(message)
            self.sent = max(self.sent, int(message["seq"]))
        return len(messages)


class LiveRelay:
    """Live scores, status, frames and camera views from the workers to this process.

    All workers are asked at once each poll and waited for together: a worker that does not
    answer (its node died; Ray is restarting it) costs one timeout per poll, not one per
    worker, and its cameras show 'lost' until it answers again. A worker's handle is looked
    up by name again when a call fails: another web process may have replaced the actor."""

    def __init__(self, workers: dict[str, Any], hub: Hub, namespace: str,
                 announce: Callable[[], None]) -> None:
        self.workers = workers
        self.hub = hub
        self.namespace = namespace
        self.announce = announce  # tells viewers the camera list changed
        self.owner = uuid.uuid4().hex  # this web process, to the workers (its leases)
        self.views: dict[str, dict[str, Any]] = {}  # camera -> its view, for admins
        self.public_views: dict[str, dict[str, Any]] = {}  # ... for viewers (generic reasons)
        self._cameras: dict[str, list[str]] = {}  # worker -> its cameras (from its views)
        self._cursors: dict[str, tuple[str, int]] = {}  # worker -> (incarnation, cursor)
        self._frames_sent: dict[str, int] = {}  # camera -> the last frame relayed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-relay", daemon=True)
        self.unreachable: set[str] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(CALL_TIMEOUT_S + 5)

    def _watched(self) -> tuple[list[str] | None, dict[str, tuple[bool, bool]]]:
        """The cameras some subscribed viewer shows (None: all), and which frames of each
        they want."""
        clients = [c for c in list(self.hub.clients) if c.subscribed]
        cameras: set[str] | None = set()
        for client in clients:
            if client.cameras is None:
                cameras = None
                break
            cameras |= client.cameras
        frames = {camera: self.hub.wants_frames(camera) for camera in self.views}
        return (None if cameras is None else sorted(cameras)), \
            {camera: wants for camera, wants in frames.items() if any(wants)}

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception:  # keep relaying; the next poll tries again
                log.exception("live relay failed")

    def poll(self) -> None:
        import ray

        cameras, frames = self._watched()
        refs = {}
        for name, worker in self.workers.items():
            incarnation, cursor = self._cursors.get(name, ("", 0))
            refs[name] = worker.take_live.remote(self.owner, incarnation, cursor, cameras,
                                                 frames, self._frames_sent)
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs),
                            timeout=CALL_TIMEOUT_S)
        changed = False
        for name, ref in refs.items():
            try:
                if ref not in ready:
                    raise TimeoutError("no answer")
                live = ray.get(ref)
            except Exception as exc:  # the worker's node died; Ray restarts it elsewhere
                changed |= self._unreachable(name, exc)
                continue
            if name in self.unreachable:
                self.unreachable.discard(name)
                changed = True
                log.info("camera worker %s answers again", name)
            incarnation, _ = self._cursors.get(name, ("", 0))
            if incarnation and live["incarnation"] != incarnation:
                log.warning("camera worker %s restarted", name)
            self._cursors[name] = (live["incarnation"], live["cursor"])
            self._cameras[name] = [view["id"] for view in live["views"]]
            for view in live["views"]:
                changed |= self._state(view) != self._state(self.views.get(view["id"]))
                self.views[view["id"]] = view
            for view in live["public_views"]:
                self.public_views[view["id"]] = view
            for message in live["messages"]:
                self.hub.publish(message)
            for frame in live["frames"]:
                self._frames_sent[frame.camera] = frame.frame
                self.hub.publish_frame(frame)
        if changed:
            self.announce()

    @staticmethod
    def _state(view: dict[str, Any] | None) -> str | None:
        return view["status"]["state"] if view else None

    def _unreachable(self, name: str, exc: Exception) -> bool:
        """Mark a worker's cameras lost (once) and look its actor up again by name."""
        import ray

        with contextlib.suppress(ValueError):  # not (yet) registered again
            self.workers[name] = ray.get_actor(name, namespace=self.namespace)
        if name in self.unreachable:
            return False
        log.warning("camera worker %s does not answer (%s)", name, type(exc).__name__)
        self.unreachable.add(name)
        lost = {**UNREACHABLE, "since": time.time()}
        for camera in self._cameras.get(name, []):
            for views in (self.views, self.public_views):
                if camera in views:
                    views[camera] = {**views[camera], "status": lost}
        return True


def place_site(config: Config) -> tuple[dict[str, Any], Any]:
    """Join the cluster, deploy the scorers and place the camera workers; ClipwatchError
    (one line) when any of it cannot be done."""
    started = time.monotonic()
    try:
        runtime.connect(config)
    except ClipwatchError:
        raise
    except Exception as exc:  # Ray's own: version mismatch, auth
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClipwatchError(f"cannot join the Ray cluster at {config.cluster.address}: "
                             f"{first}") from None
    scorers = runtime.deploy_scorers(config)
    workers = runtime.place_workers(config)
    log.info("cluster mode: %d camera worker(s), %d scorer replica(s), placed in %.1f s",
             len(workers), config.cluster.scorer_replicas, time.monotonic() - started)
    return workers, scorers


class ClusterService(Service):
    """`Service` for a web process in cluster mode (see the module docstring)."""

    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        runtime.check_cluster_extra()
        super().__init__(config, config_path)
        self.hub = StoredAlertsHub(config.live, self.metrics)
        self.services.hub = self.hub
        self.store_relay = StoreRelay(self.store, self.hub)
        self.sink_leadership = SinkLeadership(config.cluster.database, self.sinks)
        self.live: LiveRelay | None = None
        # The site is placed before the server listens: a cluster that cannot be reached, or
        # that has no node for the workers or scorers, stops `serve` with one line.
        self.workers, self.scorers = place_site(config)

    def start(self, loop=None) -> None:
        if loop is not None:
            self.hub.attach(loop)
        self.live = LiveRelay(self.workers, self.hub, self.config.cluster.namespace,
                              self._announce)
        self.live.poll()  # the first views before anyone asks
        self.live.start()
        self.store_relay.start()
        self._housekeeping.start()
        self.sink_leadership.start()  # the sinks run in the one web process that leads
        self.started = True

    def stop(self) -> None:
        """This web process goes; the workers and scorers stay (they serve the site)."""
        self._stopping.set()
        if self.live is not None:
            self.live.stop()
        self.store_relay.stop()
        self.sink_leadership.stop()
        if self._housekeeping.is_alive():
            self._housekeeping.join(10)
        self.auth.checker.close()
        self.store.close()
        self.started = False

    # -- cameras: views from the workers; changes through the site config ---------------

    def camera_views(self, detail: bool = False) -> list[dict[str, Any]]:
        return [self._view(c, detail) for c in self.config.cameras]

    def camera_view(self, camera_id: str, detail: bool = False) -> dict[str, Any]:
        return self._view(self.camera(camera_id), detail)

    def _view(self, camera: CameraConfig, detail: bool) -> dict[str, Any]:
        """The camera as its worker last showed it (an admin's view: the errors themselves),
        or as stopped before any worker answered."""
        views = (self.live.views if detail else self.live.public_views) \
            if self.live is not None else {}
        view = views.get(camera.id)
        return dict(view) if view is not None else camera_view(None, camera, detail, None)

    def frame_size(self, camera_id: str) -> tuple[int, int] | None:
        view = self.live.views.get(camera_id) if self.live is not None else None
        size = view.get("frame_size") if view else None
        return tuple(size) if size else None

    def _refuse(self, what: str) -> None:
        raise NotInClusterMode(f"{what} is not available in cluster mode: the site config "
                               "lists the cameras (edit it and restart the web tier)")

    def add_camera(self, camera: CameraConfig, from_api: bool = False) -> dict[str, Any]:
        self._refuse("adding a camera")

    def replace_camera(self, camera: CameraConfig, from_api: bool = False) -> dict[str, Any]:
        self._refuse("changing a camera")

    def remove_camera(self, camera_id: str) -> None:
        self._refuse("removing a camera")

    def start_recording(self, *args, **kwargs) -> dict[str, Any]:
        self._refuse("recording a camera")

    def start_learning(self, *args, **kwargs) -> dict[str, Any]:
        self._refuse("learning a camera")

    def _cameras_behind(self) -> bool:
        return False

    def readiness(self) -> dict[str, Any]:
        store_error = self.store.check()
        unreachable = sorted(self.live.unreachable) if self.live is not None else []
        checks = {
            "model": self.detector.path.name,
            "variant": self.config.model.variant,
            "inference_running": not unreachable and bool(self.workers),
            "alerts_waiting_for_store": None,
            "cluster": self.config.cluster.address,
            "camera_workers": len(self.workers),
            "workers_unreachable": unreachable,
            "store_writable": store_error is None,
            "store_error": store_error,
            "images_not_stored": self.store.images_not_stored,
            "cameras": {cid: v["status"]["state"] for cid, v in
                        (self.live.views.items() if self.live is not None else [])},
        }
        checks["ready"] = bool(self.started and store_error is None and not unreachable)
        return checks
