"""The store runs out of room while alerts happen (the server process may not grow a file past
a few hundred kB: RLIMIT_FSIZE, as a full disk would refuse the write). The service keeps
running, says so in /readyz, keeps the alerts, and stores and broadcasts them all once there
is room again."""

from __future__ import annotations

import json
import resource
import urllib.error
import urllib.request

from server_helpers import (
    ServerProcess,
    free_port,
    ped2_clip01,
    replay_camera,
    wait_for,
    write_config,
)
from websockets.sync.client import connect

LIMIT_BYTES = 160 * 1024


def readiness(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_full_disk_is_reported_and_no_alert_is_lost(shared_data, tmp_path):
    # Every frame scored, at the clip's own rate: the default model calls skipped frames
    # abnormal (weights/README.md), which would skew the baseline the camera learns.
    camera = replay_camera(ped2_clip01(shared_data), loop=True, fps=10.0, stride=1)
    server = ServerProcess(
        write_config(tmp_path, [camera]), free_port(),
        tmp_path / "serve.log")
    server.start()
    try:
        pid = server.process.pid
        # the soft limit only: the hard one stays, so it can be raised again without privileges
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (LIMIT_BYTES, resource.RLIM_INFINITY))
        seen = []
        with connect(server.url.replace("http", "ws") + "/ws") as ws:
            ws.send(json.dumps({"type": "subscribe", "cameras": ["*"], "video": False}))

            def full():
                status, body = readiness(server.url)
                return status == 503 and body["store_error"] and body

            body = wait_for(full, 120, interval=1.0, what="the store to fill up")
            assert "full" in body["store_error"] or "disk" in body["store_error"]
            assert server.process.poll() is None  # running, not crash-looping
            assert urllib.request.urlopen(f"{server.url}/healthz", timeout=5).status == 200
            waiting = wait_for(lambda: readiness(server.url)[1]["alerts_waiting_for_store"],
                               60, interval=1.0, what="alerts held while the disk is full")
            assert waiting > 0
            # room again: everything held is stored, then broadcast, in order
            resource.prlimit(pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            wait_for(lambda: readiness(server.url)[0] == 200, 30, interval=0.5,
                     what="readiness once there is room")
            while True:
                data = json.loads(ws.recv(timeout=30))
                if data["type"] == "alert":
                    seen.append(data["seq"])
                if readiness(server.url)[1]["alerts_waiting_for_store"] == 0 and \
                        seen and seen[-1] >= len(seen):
                    break
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        with connect(server.url.replace("http", "ws") + "/ws") as ws:
            last = json.loads(ws.recv(timeout=10))["last_seq"]
        assert set(range(1, min(last, seen[-1]) + 1)) <= set(seen)  # none lost
    finally:
        server.stop()
