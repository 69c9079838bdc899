"""Cluster mode under faults, on a real five-node Ray cluster and a real PostgreSQL server.

- A camera node killed (SIGKILL of its raylet and everything under it): its camera worker
  comes back on the other camera node, every alert stored before is there exactly once, the
  alert it had open is closed at its last stored update, and viewers of two web processes
  (`clipwatch serve` with the site's cluster section) see every alert message, in sequence,
  one of them resuming from where the other was.
- A scorer node killed: each camera loses at most one call, which it retries; scoring
  resumes.
"""

from __future__ import annotations

import json
import threading
import time

import ray
from server.server_helpers import ServerProcess, free_port, wait_for
from websockets.sync.client import connect

from clipwatch.cluster import runtime
from clipwatch.config import CameraConfig, save_config
from clipwatch.model.sidecar import read_sidecar
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.server.pg_store import PostgresEventStore

WORKER_BACK_S = 90.0  # bound: a dead camera node's worker answers again on another node
SCORING_BACK_S = 60.0  # bound: scoring resumes after a scorer node dies


class Viewer:
    """A websocket viewer of a web process, keeping every alert message it gets."""

    def __init__(self, url: str, since: int | None = None) -> None:
        self.ws = connect(url.replace("http://", "ws://") + "/ws", max_size=None,
                          open_timeout=30)
        self.hello = json.loads(self.ws.recv(timeout=30))
        self.ws.send(json.dumps({"type": "subscribe", "cameras": ["*"], "video": False}))
        if since is not None:
            self.ws.send(json.dumps({"type": "resume", "since": since}))
        self.alerts: list[dict] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                if isinstance(raw, str):
                    message = json.loads(raw)
                    if message.get("type") == "alert":
                        self.alerts.append(message)
        except Exception:
            pass  # closed

    @property
    def seqs(self) -> list[int]:
        """The alert messages' seqs as first received (a message both resumed and
        broadcast, at the moment of the resume, comes twice; the viewer keeps one)."""
        seen: dict[int, None] = {}
        for message in list(self.alerts):
            seen.setdefault(message["seq"], None)
        return list(seen)

    def close(self) -> None:
        self.ws.close()
        self._thread.join(5)


def web_process(config, folder, name: str) -> ServerProcess:
    port = free_port()
    config = config.model_copy(deep=True)
    config.server.port = port
    path = folder / f"{name}.yaml"
    save_config(config, path)
    return ServerProcess(path, port, folder / f"{name}.log").start(timeout=240)


def node_of(node_id: str) -> dict:
    (node,) = [n for n in ray.nodes() if n["NodeID"] == node_id and n["Alive"]]
    return node


def test_a_killed_camera_node_loses_no_alert_and_viewers_see_no_gap(site, sample_clip,
                                                                     tmp_path):
    camera = CameraConfig(id="loop", source=str(sample_clip), fps=10.0, loop=True)
    config = site["make"]([camera])
    web_a = web_process(config, tmp_path, "web-a")
    web_b = None
    store = PostgresEventStore(site["database"], site["storage"])
    viewer = Viewer(web_a.url, since=0)
    try:
        web_b = web_process(config, tmp_path, "web-b")  # finds the same worker and scorers
        runtime.connect(config)
        (name,) = runtime.camera_groups(config)
        worker = ray.get_actor(name, namespace=config.cluster.namespace)
        before_kill = ray.get(worker.ping.remote())
        opened = wait_for(lambda: store.list(state="open")[0], 120,
                          what="an alert to open on the looping Ped2 clip")[0]
        events_before = {e["id"]: e for e in store.list(limit=1000)[0]}
        seen_before = max(viewer.seqs, default=0)

        killed_at, wall_killed = time.monotonic(), time.time()
        site["cluster"].kill_node(node_of(before_kill["node"]))

        def back():
            try:
                ping = ray.get(worker.ping.remote(), timeout=5)
            except Exception:
                return None
            return ping if ping["incarnation"] != before_kill["incarnation"] else None

        after = wait_for(back, WORKER_BACK_S, interval=0.5, what="the worker to come back")
        worker_back_s = time.monotonic() - killed_at
        assert after["node"] != before_kill["node"]
        wait_for(lambda: ray.get(worker.counts.remote()).get("loop", {}).get(
            "frames_scored", 0) >= 30, 60, what="the restarted camera to score")
        scoring_back_s = time.monotonic() - killed_at
        closed = wait_for(lambda: (e := store.get(opened["id"]))["state"] == "closed" and e,
                          30, what="the interrupted alert to be closed")
        assert closed["ended_at"] == closed["updated_at"]  # at its last stored update
        assert closed["updated_at"] <= wall_killed

        events = store.list(limit=1000)[0]
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids)) and set(events_before) <= set(ids)
        starts = [(e["camera"], e["started_at"], e["start_frame"]) for e in events]
        assert len(starts) == len(set(starts))  # no alert stored twice
        warm_up = read_sidecar(DEFAULT_MODEL).input_spec.clip_length - 1
        for event in events:  # after the restart too, no alert starts in the warm-up frames
            assert event["start_frame"] >= warm_up

        # Both viewers get every alert message, in sequence order, with no gap.
        stored = [m["seq"] for m in store.messages_since(0, 10_000)]
        wait_for(lambda: viewer.seqs and viewer.seqs[-1] >= stored[-1], 30,
                 what="viewer A to get the newest alert message")
        assert viewer.seqs == stored[:len(viewer.seqs)]
        late = Viewer(web_b.url, since=seen_before)  # resumes on the other web process
        try:
            wait_for(lambda: late.seqs and late.seqs[-1] >= stored[-1], 30,
                     what="viewer B to catch up")
            assert late.seqs[:len(stored) - seen_before] == [s for s in stored
                                                             if s > seen_before]
        finally:
            late.close()
        print(f"camera node killed: worker back on another node in {worker_back_s:.1f} s, "
              f"30 frames scored {scoring_back_s:.1f} s after the kill; {len(events)} alerts, "
              f"{len(stored)} alert messages, seqs 1..{stored[-1]} with no gap")
    finally:
        viewer.close()
        store.close()
        web_a.stop()
        if web_b is not None:
            web_b.stop()


def replicas_by_node(handle, replicas: int) -> dict[str, dict]:
    """Node -> what its scorer replica says of itself, asked of the replicas themselves
    (routed by session: other sessions reach other replicas)."""
    found: dict[str, dict] = {}
    for n in range(200):
        described = handle.options(session_id=f"probe{n}").describe.remote().result()
        found[described["node"]] = described
        if len(found) == replicas:
            break
    return found


def test_a_killed_scorer_node_costs_each_camera_at_most_one_retried_call(site, sample_clip):
    cameras = [CameraConfig(id=cid, source=str(sample_clip), fps=10.0, loop=True)
               for cid in ("c1", "c2")]
    config = site["make"](cameras, scorer_replicas=2)
    runtime.connect(config)
    scorers = runtime.deploy_scorers(config)
    workers = runtime.place_workers(config)

    def counts():
        merged = {}
        for worker in workers.values():
            merged.update(ray.get(worker.counts.remote(), timeout=10))
        return merged

    wait_for(lambda: len(c := counts()) == 2 and all(n["frames_scored"] >= 30
                                                     for n in c.values()), 90,
             what="both cameras to score")
    replicas = replicas_by_node(scorers, 2)
    assert len(replicas) == 2  # one replica per scorer node
    # The replica that scored camera c1 last (its cache is there) dies.
    victim = max(replicas, key=lambda node: replicas[node]["scored_at"].get("c1", 0.0))
    (other,) = set(replicas) - {victim}
    affected = [c for c in ("c1", "c2")  # the cameras whose cache is on the victim
                if replicas[victim]["scored_at"].get(c, 0.0) >
                replicas[other]["scored_at"].get(c, 0.0)]
    assert "c1" in affected
    at_kill = counts()
    killed_at = time.monotonic()
    site["cluster"].kill_node(node_of(victim))

    def resumed():
        now = counts()
        return all(now[c]["frames_scored"] >= at_kill[c]["frames_scored"] + 40
                   for c in now) and now

    now = wait_for(resumed, SCORING_BACK_S, interval=0.5, what="scoring to resume")
    resumed_s = time.monotonic() - killed_at
    failed = {c: now[c]["failed_calls"] for c in now}
    assert all(n <= 1 for n in failed.values()), failed
    # Its cameras' caches were on the dead replica: each resent (a miss) or retried a call.
    assert all(now[c]["misses"] + failed[c] >= 1 for c in affected), (affected, now)
    print(f"scorer node killed: scoring resumed (40 more frames per camera) in "
          f"{resumed_s:.1f} s; failed calls per camera {failed}, misses "
          f"{ {c: now[c]['misses'] for c in now} }")


def test_alerts_wait_for_a_restarted_database_and_are_stored_in_order(site, sample_clip,
                                                                      postgres_server):
    camera = CameraConfig(id="db", source=str(sample_clip), fps=10.0, loop=True)
    config = site["make"]([camera])
    runtime.connect(config)
    runtime.deploy_scorers(config)
    (worker,) = runtime.place_workers(config).values()
    store = PostgresEventStore(site["database"], site["storage"])
    try:
        wait_for(lambda: store.list(state="open")[0], 120, what="an alert to open")
        postgres_server.stop()
        # The open alert's updates (one a second) wait in the camera's outbox meanwhile.
        wait_for(lambda: ray.get(worker.counts.remote())["db"]["unstored"] >= 3, 30,
                 what="alert messages to wait for the database")  # started: an alert opened
        postgres_server.start()
        back = time.monotonic()
        wait_for(lambda: ray.get(worker.counts.remote())["db"]["unstored"] == 0, 60,
                 interval=0.1, what="the waiting alert messages to be stored")
        stored_s = time.monotonic() - back
        messages = store.messages_since(0, 10_000)
        assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
        by_alert: dict[int, list[dict]] = {}
        for message in messages:
            by_alert.setdefault(message["alert"]["id"], []).append(message)
        for kinds in ([m["event"] for m in ms] for ms in by_alert.values()):
            assert kinds[0] == "start" and kinds.count("start") == 1
            assert "end" not in kinds[:-1]  # nothing after its end
        for ms in by_alert.values():  # each alert's updates in the order they happened
            updated = [m["alert"]["updated_at"] for m in ms]
            assert updated == sorted(updated)
        print(f"PostgreSQL restarted: the waiting alert messages were stored within "
              f"{stored_s:.2f} s (polled every 0.1 s) "
              f"after it accepted connections again; {len(messages)} messages, in order")
    finally:
        store.close()
