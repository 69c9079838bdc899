"""Joining (or starting) the Ray cluster, deploying the scorers, placing the camera workers.

Every process of a site (each web process, the bench) calls the same functions with the
same site config; they are idempotent: the scorers are one named Serve application and each
camera group one named, detached actor (`get_if_exists`), so a second web process finds
what the first placed, and a worker whose cameras changed in the config is replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from clipwatch.cluster.scorer import SCORER_APP, scorer_deployment
from clipwatch.config import Config
from clipwatch.errors import ClipwatchError
from clipwatch.model.detector import DetectorOptions

log = logging.getLogger(__name__)

WORKER_PREFIX = "clipwatch-cameras-"
PING_S = 30.0  # a running worker answers a ping within this (or is replaced)
STOP_S = 60.0  # a worker stopping closes its cameras' alerts within this


class ClusterStartError(ClipwatchError):
    """The site could not be started on the cluster (no node for its workers or scorers)."""


def check_cluster_extra() -> None:
    """One line, not an ImportError, when cluster mode's packages are missing."""
    missing = [name for name in ("ray", "psycopg") if importlib.util.find_spec(name) is None]
    if missing:
        raise ClipwatchError(f"cluster mode needs {' and '.join(missing)}: pip install "
                             "'clipwatch[cluster]' (scripts/setup.sh cluster)")


def connect(config: Config) -> None:
    """Join the cluster the config names ('local': start one in this process, on loopback).
    Ray's usage reporting (it would try the internet) is off unless the caller set it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    cluster = config.cluster
    assert cluster is not None
    if cluster.address == "local":
        # Ray binds the machine's external address unless told otherwise.
        ray.init(address="local", namespace=cluster.namespace, include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=False)
    else:
        check_reachable(cluster.address)
        ray.init(address=cluster.address, namespace=cluster.namespace, log_to_driver=False)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A head named host:port that does not answer fails here, in seconds: `ray.init` would
    retry for minutes."""
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or not host or not port.isdigit():
        return  # 'auto', or a client address: Ray's own checks
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterStartError(f"cannot reach the Ray head at {address}: "
                                f"{exc.strerror or exc}") from None


def deploy_scorers(config: Config, stand_in_batch_s: float | None = None,
                   replicas: int | None = None):
    """The scorer application (deployed, or updated to this config); its handle. Raises
    ClusterStartError when its replicas are not running within `start_timeout_s` (no node
    has the GPUs or resources they ask for)."""
    from ray import serve

    cluster = config.cluster
    assert cluster is not None
    model = portable(config).model  # a replica's working folder is Ray's
    serve.start(proxy_location="Disabled")  # calls come through handles only
    options = DetectorOptions(device=model.device, intra_op_threads=model.threads,
                              max_batch=cluster.max_batch)
    app, settings = scorer_deployment(
        model.path, options, model.variant, replicas or cluster.scorer_replicas,
        cluster.max_batch, cluster.batch_wait_s, cpus=cluster.cpus_per_replica,
        gpus=cluster.gpus_per_replica, resources=cluster.scorer_resources or None,
        stand_in_batch_s=stand_in_batch_s)
    running = running_scorers(settings)
    if running is not None:  # another web process deployed the same: keep its replicas
        return running
    # serve.run waits until every replica runs, however long: it runs on a thread here so a
    # site asking for what no node has fails with one line instead of waiting forever.
    done: dict[str, Any] = {}

    def deploy() -> None:
        try:
            done["handle"] = serve.run(app, name=SCORER_APP, route_prefix=None)
        except Exception as exc:
            done["error"] = exc

    thread = threading.Thread(target=deploy, name="deploy-scorers", daemon=True)
    thread.start()
    thread.join(cluster.start_timeout_s)
    if "handle" in done:
        return done["handle"]
    if "error" in done:
        error = done["error"]
        raise ClusterStartError(f"the scorers could not be deployed: {type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else ''}")
    raise ClusterStartError(
        f"the scorers did not start within {cluster.start_timeout_s:.0f} s: no node has "
        f"{cluster.cpus_per_replica:g} CPU, {cluster.gpus_per_replica:g} GPU and "
        f"{dict(cluster.scorer_resources) or 'no custom resources'} free for each of "
        f"{replicas or cluster.scorer_replicas} replica(s)?")


def running_scorers(settings: str):
    """The handle of scorers already running with these settings (their caches warm), or
    None: deploying them again would restart every replica."""
    from ray import serve

    try:
        application = serve.status().applications.get(SCORER_APP)
        if application is None or application.status != "RUNNING":
            return None
        handle = serve.get_app_handle(SCORER_APP)
        if handle.describe.remote().result(timeout_s=PING_S).get("settings") == settings:
            return handle
    except Exception as exc:  # not there, or not answering: deploy
        log.info("scorers not reused (%s)", type(exc).__name__)
    return None


def camera_groups(config: Config) -> dict[str, list[str]]:
    """Worker name -> the ids of the cameras it owns, `cameras_per_worker` at a time in the
    config's order (a camera keeps its worker while the config keeps its place)."""
    assert config.cluster is not None
    size = config.cluster.cameras_per_worker
    ids = [c.id for c in config.cameras if c.enabled]
    return {f"{WORKER_PREFIX}{n}": ids[start:start + size]
            for n, start in enumerate(range(0, len(ids), size))}


def place_workers(config: Config) -> dict[str, Any]:
    """Each camera group's worker actor, created or found. Workers whose cameras or
    settings changed, and those of groups the config no longer has, are stopped first (their
    open alerts closed, stored), so no camera ever runs in two workers at once."""
    import ray

    from clipwatch.cluster.worker import CameraWorker

    cluster = config.cluster
    assert cluster is not None
    wire = portable(config).model_dump(mode="json")
    groups = camera_groups(config)
    specs = {name: worker_spec(wire, ids) for name, ids in groups.items()}
    for name in stale_workers(set(), cluster.namespace):  # every worker of the site
        worker = ray.get_actor(name, namespace=cluster.namespace)
        try:
            if ray.get(worker.ping.remote(), timeout=PING_S)["spec"] == specs.get(name):
                continue
            log.info("worker %s runs another config or other cameras; replacing it", name)
            ray.get(worker.stop.remote(), timeout=STOP_S)
        except Exception as exc:  # dead, or not answering: it goes all the same
            log.warning("worker %s did not stop cleanly (%s); killing it", name,
                        type(exc).__name__)
        ray.kill(worker, no_restart=True)
    actor = ray.remote(CameraWorker)
    workers = {}
    for name, ids in groups.items():
        options = dict(name=name, namespace=cluster.namespace, lifetime="detached",
                       get_if_exists=True, max_restarts=cluster.max_restarts,
                       max_task_retries=0, num_cpus=cluster.worker_cpus,
                       scheduling_strategy="SPREAD", max_concurrency=4)
        if cluster.worker_resources:
            options["resources"] = dict(cluster.worker_resources)
        workers[name] = actor.options(**options).remote(name, wire, ids)
    deadline = time.monotonic() + cluster.start_timeout_s
    for name, worker in workers.items():
        try:
            ray.get(worker.ping.remote(), timeout=max(1.0, deadline - time.monotonic()))
        except ray.exceptions.GetTimeoutError:
            raise ClusterStartError(
                f"camera worker {name} was not placed within {cluster.start_timeout_s:.0f} s: "
                f"no node has {cluster.worker_cpus:g} CPU and "
                f"{dict(cluster.worker_resources) or 'no custom resources'} free?") from None
    return workers


def portable(config: Config) -> Config:
    """The config as a camera worker reads it: paths made absolute, since a worker's working
    folder is Ray's, not this process's (on other machines they must name the same shared
    folders: the storage, the model, file sources)."""
    from clipwatch.stream.sources import source_kind

    config = config.model_copy(deep=True)
    config.storage.dir = config.storage.dir.resolve()
    config.model.path = Path(config.model.path).resolve()
    if config.model.folder is not None:
        config.model.folder = config.model.folder.resolve()
    for camera in config.cameras:
        if source_kind(camera.source) == "file" and not camera.source.startswith("file:"):
            camera.source = str(Path(camera.source).resolve())
        if camera.model is not None:
            camera.model = Path(camera.model).resolve()
    return config


def worker_spec(config: dict[str, Any], camera_ids: list[str]) -> str:
    """A digest of what a worker reads of the site config: its cameras, the model, alert
    and live rules, the storage, the database. A change there replaces the worker; one
    elsewhere (the web process's port, auth, sinks) does not."""
    cameras = [c for c in config.get("cameras", []) if c["id"] in set(camera_ids)]
    cluster = config.get("cluster") or {}
    read = {"cameras": cameras, "ids": camera_ids,
            **{key: config.get(key) for key in ("model", "alerts", "live", "storage")},
            "cluster": {key: cluster.get(key) for key in ("database", "max_batch")}}
    text = json.dumps(read, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale_workers(names: set[str], namespace: str) -> list[str]:
    """Camera workers alive in the namespace that are not among `names`."""
    from ray.util import list_named_actors

    return [a["name"] for a in list_named_actors(all_namespaces=True)
            if a.get("namespace") == namespace and a["name"].startswith(WORKER_PREFIX)
            and a["name"] not in names]


def stop_site(config: Config, timeout: float = 60.0) -> None:
    """Take the site off the cluster: its camera workers stop (closing their open alerts,
    stored) and go, and the scorer application is deleted."""
    import ray
    from ray import serve

    cluster = config.cluster
    assert cluster is not None
    for name in stale_workers(set(), cluster.namespace):
        try:
            worker = ray.get_actor(name, namespace=cluster.namespace)
            ray.get(worker.stop.remote(), timeout=timeout)
        except Exception as exc:  # dead or restarting: it goes all the same
            log.warning("worker %s did not stop cleanly: %s", name, exc)
        with contextlib.suppress(ValueError):  # already gone
            ray.kill(ray.get_actor(name, namespace=cluster.namespace), no_restart=True)
    serve.delete(SCORER_APP)


def site_status(config: Config, timeout: float = 10.0) -> dict[str, str]:
    """Each camera worker of the site: its cameras, node and state, or why it does not
    answer."""
    import ray

    cluster = config.cluster
    assert cluster is not None
    status = {}
    for name, ids in camera_groups(config).items():
        try:
            worker = ray.get_actor(name, namespace=cluster.namespace)
            counts = ray.get(worker.counts.remote(), timeout=timeout)
            ping = ray.get(worker.ping.remote(), timeout=timeout)
        except Exception as exc:  # not placed yet, dead, restarting
            status[name] = f"{', '.join(ids)}: not answering ({type(exc).__name__})"
            continue
        cameras = ", ".join(f"{cid} {c['state']} ({c['frames_scored']} frames scored)"
                            for cid, c in counts.items())
        status[name] = f"{cameras}; node {ping['node'][:12]}, up since " \
                       f"{time.strftime('%H:%M:%S', time.localtime(ping['started_at']))}"
    return status
