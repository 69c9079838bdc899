"""Cluster mode scores exactly what the embedded mode scores.

Two cameras on two camera workers (each on its own camera node), their clips scored by two
scorer replicas on two scorer nodes, alerts stored in PostgreSQL. Every frame of each camera
is scored once, with the regularity the embedded pipeline gives it, and the alerts stored
are the embedded mode's alerts (same frames, same worst regularity).
"""

from __future__ import annotations

import threading

import numpy as np
import ray
from server.server_helpers import wait_for

from clipwatch.cluster import runtime
from clipwatch.cluster.bench import cluster_memory_mb
from clipwatch.config import AlertConfig, CameraConfig, LiveConfig
from clipwatch.model.reconstructors import load_model
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.server.event_store import EventStore
from clipwatch.server.grabber import GrabbedFrame
from clipwatch.server.hub import Hub
from clipwatch.server.inference_loop import InferenceLoop
from clipwatch.server.messages import to_wire
from clipwatch.server.metrics import Metrics
from clipwatch.server.pg_store import PostgresEventStore
from clipwatch.server.pipeline import CameraPipeline, Services
from clipwatch.stream.sources import open_source

FRAMES = 180  # the sample clip


class ListHub(Hub):
    def __init__(self) -> None:
        super().__init__(LiveConfig(), Metrics())
        self.messages: list[dict] = []

    def publish(self, message) -> None:
        self.messages.append(to_wire(message))

    def publish_frame(self, frame) -> None:
        pass


def embedded(camera: CameraConfig, alerts: AlertConfig, folder):
    """The embedded mode on the same frames: (regularity per frame, stored alerts)."""
    hub = ListHub()
    store = EventStore(folder)
    services = Services(load_model(DEFAULT_MODEL), store, hub, Metrics(), alerts,
                        LiveConfig(frame_queue=FRAMES + 1), 85, threading.Event())
    pipeline = CameraPipeline(camera, services)
    loop = InferenceLoop(services, lambda: [pipeline])
    with open_source(camera.source) as source:
        for k, frame in enumerate(source):
            pipeline.grabber.queue.put(GrabbedFrame(frame, 1, 1000.0 + k / camera.fps, k + 1))
            if k % 10 == 9:
                loop.run_once()
    loop.run_once()
    pipeline.stop()  # an alert still open ends with the footage, as a file camera's does
    scores = {m["frame"]: m["regularity"] for m in hub.messages if m["type"] == "score"}
    return scores, store.list(limit=1000)[0]


def alert_key(event: dict) -> tuple:
    return event["start_frame"], event["worst_frame"], event["frames"]


def test_every_frame_is_scored_once_and_the_alerts_match_the_embedded_mode(site, sample_clip,
                                                                        tmp_path):
    cameras = [CameraConfig(id=cid, source=str(sample_clip), fps=15.0) for cid in ("a", "b")]
    config = site["make"](cameras, scorer_replicas=2)
    runtime.connect(config)
    runtime.deploy_scorers(config)
    workers = runtime.place_workers(config)
    assert len(workers) == 2
    nodes = {ray.get(w.ping.remote())["node"] for w in workers.values()}
    assert len(nodes) == 2  # one camera worker per camera node

    def ended():
        counts = {}
        for worker in workers.values():
            counts.update(ray.get(worker.counts.remote()))
        return all(c["state"] == "ended" and c["frames_scored"] == FRAMES
                   for c in counts.values()) and len(counts) == 2 and counts

    counts = wait_for(ended, 120, what="both cameras to score their footage")
    print(f"five-node cluster with 2 camera workers and 2 scorer replicas: "
          f"{cluster_memory_mb():.0f} MB resident in Ray's processes")
    assert all(c["failed_calls"] == 0 and c["unstored"] == 0 for c in counts.values())

    reference, reference_alerts = embedded(cameras[0], config.alerts, tmp_path / "embedded")
    assert reference_alerts, "the sample clip raises alerts in the embedded mode"
    store = PostgresEventStore(site["database"], site["storage"])
    try:
        for worker in workers.values():
            live = ray.get(worker.take_live.remote("test", "", 0, None))
            scores = [m for m in live["messages"] if m["type"] == "score"]
            (camera,) = {m["camera"] for m in scores}
            frames = [m["frame"] for m in scores]
            assert sorted(frames) == list(range(FRAMES))  # every frame, exactly once
            served = np.array([np.nan if m["regularity"] is None else m["regularity"]
                               for m in sorted(scores, key=lambda m: m["frame"])])
            expected = np.array([np.nan if reference[f] is None else reference[f]
                                 for f in range(FRAMES)])
            np.testing.assert_array_equal(np.isnan(served), np.isnan(expected))
            np.testing.assert_allclose(served[~np.isnan(served)],
                                       expected[~np.isnan(expected)], rtol=1e-6)
            stored, _ = store.list(camera=camera, limit=1000)
            assert sorted(map(alert_key, stored)) == sorted(map(alert_key, reference_alerts))
            for mine, theirs in zip(sorted(stored, key=alert_key),
                                    sorted(reference_alerts, key=alert_key), strict=True):
                assert mine["state"] == theirs["state"] == "closed"
                assert abs(mine["lowest_regularity"] - theirs["lowest_regularity"]) < 1e-6
    finally:
        store.close()


def test_a_second_web_process_keeps_the_running_scorers(site):
    """Serve restarts every replica when an application is deployed again, even unchanged;
    a second web process of the site finds them running with its settings and keeps them
    (their caches warm); changed settings deploy anew."""
    from ray.util import list_named_actors

    def replicas() -> set[str]:
        return {a["name"] for a in list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::clipwatch-scorers")}

    config = site["make"]([], scorer_replicas=1)
    runtime.connect(config)
    runtime.deploy_scorers(config)
    first = replicas()
    assert len(first) == 1
    runtime.deploy_scorers(config)
    assert replicas() == first
    changed = config.model_copy(deep=True)
    changed.cluster.max_batch = 8
    runtime.deploy_scorers(changed)
    assert replicas() != first
