"""The service killed hard (SIGKILL) while an alert is open, then restarted on the same store:
every alert message that was broadcast is in the store, nothing is half-written, and the
alert left open is closed at its last update."""

from __future__ import annotations

import json
import signal
import sqlite3

import cv2
import numpy as np
from server_helpers import ServerProcess, free_port, ped2_clip01, replay_camera, write_config
from websockets.sync.client import connect


def test_a_killed_service_loses_no_broadcast_alert(shared_data, tmp_path):
    camera = replay_camera(ped2_clip01(shared_data), loop=True)
    config_path = write_config(tmp_path, [camera])
    server = ServerProcess(config_path, free_port(), tmp_path / "serve.log").start()
    broadcast = []
    try:
        with connect(server.url.replace("http", "ws") + "/ws") as ws:
            ws.send(json.dumps({"type": "subscribe", "cameras": ["*"], "video": False}))
            while True:
                message = ws.recv(timeout=60)
                data = json.loads(message)
                if data["type"] == "alert":
                    broadcast.append(data)
                    if data["event"] in ("start", "update") and len(broadcast) >= 2:
                        break  # an alert is open right now
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()
    open_id = broadcast[-1]["alert"]["id"]

    server = ServerProcess(config_path, free_port(), tmp_path / "serve2.log").start()
    try:
        with connect(server.url.replace("http", "ws") + "/ws") as ws:
            ws.send(json.dumps({"type": "resume", "since": 0}))
            stored = {}
            while len(stored) < broadcast[-1]["seq"]:
                data = json.loads(ws.recv(timeout=30))
                if data["type"] == "alert":
                    stored[data["seq"]] = data
        for message in broadcast:  # every broadcast message is stored, the same
            same = stored[message["seq"]]
            assert (same["event"], same["alert"]["id"]) == \
                (message["event"], message["alert"]["id"])
        event = server.get_json(f"/api/events/{open_id}")
        assert event["state"] == "closed" and event["ended_at"] == event["updated_at"]
        store = tmp_path / "store"
        db = sqlite3.connect(f"file:{store / 'events.db'}?mode=ro", uri=True)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for snapshot, heatmap in db.execute("SELECT snapshot, heatmap FROM events"):
            for name in (snapshot, heatmap):
                if name:  # every file a row names is a whole JPEG
                    image = cv2.imdecode(np.fromfile(store / "snapshots" / name, np.uint8),
                                         cv2.IMREAD_COLOR)
                    assert image is not None and image.shape == (240, 360, 3)
        db.close()
    finally:
        server.stop()
