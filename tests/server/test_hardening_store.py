"""The snapshot folder breaks while alerts happen: a real `clipwatch serve` replaying UCSD Ped2
test 1 in a loop (an alert each pass) has its `snapshots` folder replaced by a file, as a
botched mount or a mistaken `mv` would leave it.

The alerts go on: each is stored and sent without its snapshot and heatmap; the log says so
in one line, not a traceback per frame; /readyz answers 503 with the error and counts the
images not stored while /healthz stays 200. Once the folder is back, readiness returns by
itself (before any alert), the log says how many images were missed, and alerts carry their
images again.
"""

from __future__ import annotations

import json
import time
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

BROKEN_LINE = "cannot write snapshots in"


def readiness(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def next_alert(ws, predicate, timeout: float, what: str) -> dict:
    """The next alert message (its `alert` event) that `predicate` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        if data["type"] == "alert" and predicate(data):
            return data
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_a_broken_snapshot_folder_costs_the_images_not_the_alerts(shared_data, tmp_path):
    camera = replay_camera(ped2_clip01(shared_data), loop=True)
    log_path = tmp_path / "serve.log"
    server = ServerProcess(write_config(tmp_path, [camera]), free_port(), log_path)
    server.start()
    snapshots = tmp_path / "store" / "snapshots"
    aside = tmp_path / "store" / "snapshots.aside"
    try:
        with connect(server.url.replace("http", "ws") + "/ws") as ws:
            ws.send(json.dumps({"type": "subscribe", "cameras": ["*"], "video": False}))
            snapshots.rename(aside)
            snapshots.write_bytes(b"this was the snapshot folder")

            # an alert starts meanwhile: stored and sent, without its images
            start = next_alert(ws, lambda m: m["event"] == "start" and
                               m["alert"]["snapshot_url"] is None, 90,
                               "an alert stored without its images")
            event_id = start["alert"]["id"]
            stored = server.get_json(f"/api/events/{event_id}")
            assert stored["snapshot_url"] is None and stored["heatmap_url"] is None
            status, body = readiness(server.url)
            assert status == 503 and body["store_writable"] is False
            assert BROKEN_LINE in body["store_error"] and "snapshots" in body["store_error"]
            assert body["alerts_waiting_for_store"] == 0  # nothing held: the alerts went out
            assert urllib.request.urlopen(f"{server.url}/healthz", timeout=5).status == 200
            # the failure repeats with every image (updates, the next pass's alert) ...
            wait_for(lambda: readiness(server.url)[1]["images_not_stored"] >= 6, 60,
                     interval=1.0, what="more images refused by the broken folder")
            assert server.process.poll() is None
            log = log_path.read_text()
            # ... and is said once, with no traceback reaching the inference loop
            assert log.count(BROKEN_LINE) == 1, log[-3000:]
            assert "Traceback" not in log and "inference loop failed" not in log, log[-3000:]
            assert len(log) < 20_000
            assert readiness(server.url)[1]["inference_error"] is None

            # the folder comes back: readiness first (no alert needed), then the images
            snapshots.unlink()
            aside.rename(snapshots)
            wait_for(lambda: readiness(server.url)[0] == 200, 30, interval=0.5,
                     what="readiness once the folder is back")
            log = log_path.read_text()
            assert "works again" in log and "image writes failed" in log, log[-2000:]
            with_images = next_alert(ws, lambda m: m["alert"]["snapshot_url"] is not None and
                                     m["alert"]["heatmap_url"] is not None, 90,
                                     "an alert with its images after the repair")
            url = f"{server.url}{with_images['alert']['snapshot_url']}"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.headers["content-type"] == "image/jpeg"
                assert response.read(2) == b"\xff\xd8"
        log = log_path.read_text()
        assert log.count(BROKEN_LINE) == 1 and "Traceback" not in log
    finally:
        server.stop()
