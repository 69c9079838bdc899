"""The real app (TestClient: HTTP and websocket) replaying UCSD Ped2 test clip 1.

One app per module: the clip plays once (about 9 s at 20 fps); the tests then read what it
left (alerts, snapshots, metrics) and exercise the API around it.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from server_helpers import (
    ABNORMAL_FROM_INDEX,
    CLIP_LENGTH,
    parse_frame,
    ped2_clip01,
    receive_reply,
    replay_camera,
    wait_for,
    write_config,
)

from clipwatch.config import load_config
from clipwatch.server.app import create_app
from clipwatch.server.messages import SERVER_MESSAGES, FrameHeader


@pytest.fixture(scope="module")
def live(shared_data, tmp_path_factory):
    """(client, config path, messages seen by a websocket client over the whole replay)."""
    folder = tmp_path_factory.mktemp("live")
    path = write_config(folder, [replay_camera(ped2_clip01(shared_data))])
    app = create_app(load_config(path), path)
    with TestClient(app) as client:
        seen = {"text": [], "frames": []}
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "subscribe", "cameras": ["ped2"], "video": True,
                          "overlay": True})
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                message = ws.receive()
                if message.get("bytes") is not None:
                    seen["frames"].append(parse_frame(message["bytes"]))
                    continue
                data = __import__("json").loads(message["text"])
                seen["text"].append(data)
                if data["type"] == "alert" and data["event"] == "end":
                    break
        yield client, path, seen


def test_an_alert_opens_after_the_anomaly_and_is_stored(live):
    client, _, seen = live
    alerts = [m for m in seen["text"] if m["type"] == "alert"]
    assert alerts, "no alert was broadcast"
    start = alerts[0]
    assert start["event"] == "start"
    event = start["alert"]
    # the baseline (frames 0-59) raised nothing; the alert comes with the cyclist
    assert event["start_frame"] >= ABNORMAL_FROM_INDEX
    assert event["lowest_regularity"] < event["threshold"]
    stored = client.get(f"/api/events/{event['id']}").json()
    assert stored["camera"] == "ped2" and stored["start_frame"] == event["start_frame"]
    assert alerts[-1]["event"] == "end"
    assert client.get(f"/api/events/{event['id']}").json()["state"] == "closed"
    # every broadcast alert message is in the store, in the same order
    logged = client.get("/api/events", params={"camera": "ped2"}).json()
    assert logged["total"] >= 1


def test_snapshot_and_heatmap_are_real_jpegs_of_the_camera_frame(live):
    client, _, seen = live
    event = next(m["alert"] for m in seen["text"] if m["type"] == "alert")
    for name in ("snapshot", "heatmap"):
        response = client.get(f"/api/events/{event['id']}/{name}.jpg")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (240, 360)  # UCSD Ped2's own frame size, not the model's
    plain = client.get(f"/api/events/{event['id']}/snapshot.jpg").content
    heat = client.get(f"/api/events/{event['id']}/heatmap.jpg").content
    assert plain != heat
    assert client.get("/api/events/99999/snapshot.jpg").status_code == 404


def test_scores_and_frames_reach_the_websocket_client(live):
    client, _, seen = live
    view = client.get("/api/cameras/ped2").json()
    # Frames a busy machine did not score: sampled out evenly, or dropped by the queue (a
    # drop also restarts the clips: up to CLIP_LENGTH frames then wait for the next one, and
    # the live score warms up again).
    unscored = view["frames_sampled_out"] + CLIP_LENGTH * view["frames_dropped"]
    scores = [m for m in seen["text"] if m["type"] == "score"]
    assert len(scores) > 100 - unscored
    frames = [m["frame"] for m in scores]
    assert frames == sorted(frames)  # in order, each frame once
    assert len(set(frames)) == len(frames)
    # No verdict only while the baseline is learned (its 60 scored frames, warm-up included)
    # and in the warm-up after a drop: on an idle machine, all before the cyclist.
    learning = [m for m in scores if m["regularity"] is None]
    assert learning and max(m["frame"] for m in learning) < ABNORMAL_FROM_INDEX + unscored
    assert any(m["alerting"] for m in scores)
    header, jpeg = seen["frames"][-1]
    assert header["camera"] == "ped2" and header["overlay"] is True
    assert jpeg[:2] == b"\xff\xd8"
    # viewers hear when the camera has learned its baseline and goes live
    hello = seen["text"][0]
    assert hello["type"] == "hello"
    assert hello["cameras"][0]["status"]["state"] in ("connecting", "learning")
    states = [m["state"] for m in seen["text"] if m["type"] == "status" and m["camera"] == "ped2"]
    assert "live" in states and "learning" not in states[states.index("live"):], states


def test_every_message_sent_is_one_of_the_documented_types(live):
    """What the pipeline, the store and the hub actually sent over a whole replay matches the
    websocket contract in messages.py (the one /docs shows)."""
    _, _, seen = live
    kinds = {SERVER_MESSAGES.validate_python(m).type for m in seen["text"]}
    assert {"hello", "score", "status", "alert"} <= kinds
    for header, _ in seen["frames"]:
        FrameHeader.model_validate(header)


def test_acknowledge_with_a_note(live):
    client, _, seen = live
    event = next(m["alert"] for m in seen["text"] if m["type"] == "alert")
    response = client.post(f"/api/events/{event['id']}/ack", json={"note": "cyclist on path"})
    assert response.status_code == 200
    assert response.json()["acknowledged"] is True
    assert response.json()["ack_note"] == "cyclist on path"
    listed = client.get("/api/events", params={"acknowledged": "true"}).json()
    assert event["id"] in [e["id"] for e in listed["items"]]
    assert client.post("/api/events/99999/ack", json={"note": ""}).status_code == 404
    assert client.post(f"/api/events/{event['id']}/ack", json={"nope": 1}).status_code == 422
    assert client.post(f"/api/events/{event['id']}/ack", json={"note": "x" * 3000}) \
        .status_code == 422


def test_a_reconnecting_client_gets_the_alerts_it_missed(live):
    client, _, seen = live
    broadcast = [m for m in seen["text"] if m["type"] == "alert"]
    with client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["last_seq"] >= broadcast[-1]["seq"]
        ws.send_json({"type": "resume", "since": 0})
        missed = [ws.receive_json() for _ in range(hello["last_seq"])]
    assert [m["seq"] for m in missed] == list(range(1, hello["last_seq"] + 1))
    by_seq = {m["seq"]: m for m in missed}
    for message in broadcast:  # what was broadcast live is exactly what the store replays
        assert by_seq[message["seq"]]["event"] == message["event"]
        assert by_seq[message["seq"]]["alert"]["id"] == message["alert"]["id"]


def test_malformed_websocket_messages_get_an_error_and_the_connection_stays(live):
    client, _, _ = live
    with client.websocket_connect("/ws") as ws:  # alerts or status may arrive meanwhile
        assert receive_reply(ws)["type"] == "hello"
        for bad in ("not json", "[1, 2]", '{"type": "subscribe", "cameras": 5}',
                    '{"type": "resume", "since": -1}', '{"type": "dance"}', "x" * 20000):
            ws.send_text(bad)
            reply = receive_reply(ws)
            assert reply["type"] == "error", bad
        ws.send_json({"type": "ping"})
        assert receive_reply(ws)["type"] == "pong"


def test_camera_crud_validates_and_writes_the_config_back(live, shared_data):
    client, path, _ = live
    other = str(ped2_clip01(shared_data).parent / "02")
    new = {"id": "lobby", "name": "Lobby", "source": other, "enabled": False}
    created = client.post("/api/cameras", json=new)
    assert created.status_code == 201 and created.json()["status"]["state"] == "stopped"
    assert client.post("/api/cameras", json=new).status_code == 409
    assert client.post("/api/cameras", json={**new, "id": "x2", "stride": 50}).status_code == 422
    assert client.post("/api/cameras", json={**new, "id": "../etc"}).status_code == 422
    assert client.post("/api/cameras", json={"id": "x3"}).status_code == 422  # no source
    assert client.patch("/api/cameras/lobby", json={"stride": 0}).status_code == 422
    assert client.patch("/api/cameras/lobby", json={"id": "other"}).status_code == 422
    changed = client.patch("/api/cameras/lobby", json={"name": "Lobby east", "threshold": 0.4})
    assert changed.status_code == 200 and changed.json()["name"] == "Lobby east"
    assert changed.json()["effective_threshold"] == 0.4
    saved = yaml.safe_load(path.read_text())
    assert [c["id"] for c in saved["cameras"]] == ["ped2", "lobby"]
    assert saved["cameras"][1]["name"] == "Lobby east"
    assert client.get("/api/cameras/nope").status_code == 404
    assert client.patch("/api/cameras/nope", json={"name": "n"}).status_code == 404
    assert client.delete("/api/cameras/lobby").status_code == 204
    assert client.get("/api/cameras/lobby").status_code == 404
    assert [c["id"] for c in yaml.safe_load(path.read_text())["cameras"]] == ["ped2"]


def test_a_camera_added_at_run_time_goes_live(live, shared_data):
    client, _, _ = live
    source = str(ped2_clip01(shared_data).parent / "03")
    assert client.post("/api/cameras", json={"id": "extra", "source": source, "fps": 20,
                                             "stride": 5}).status_code == 201
    view = wait_for(lambda: (v := client.get("/api/cameras/extra").json())["frames_scored"] > 10
                    and v, 30, what="the new camera's first scores")
    assert view["status"]["state"] in ("live", "ended")
    assert client.delete("/api/cameras/extra").status_code == 204


def test_events_filters_and_paging_are_validated(live):
    client, _, _ = live
    assert client.get("/api/events", params={"limit": 0}).status_code == 422
    assert client.get("/api/events", params={"limit": 501}).status_code == 422
    assert client.get("/api/events", params={"state": "weird"}).status_code == 422
    page = client.get("/api/events", params={"limit": 1, "offset": 0}).json()
    assert page["limit"] == 1 and len(page["items"]) <= 1
    assert client.get("/api/events", params={"since": time.time() + 3600}).json()["total"] == 0


def test_health_readiness_and_metrics(live):
    client, _, _ = live
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    def accounted(view) -> int:  # frames scored, or counted as not scored (see below)
        return view["frames_scored"] + view["frames_sampled_out"] + \
            CLIP_LENGTH * view["frames_dropped"]
    # (a slow machine may still be scoring the frames queued when the recording ended)
    wait_for(lambda: (v := client.get("/api/cameras/ped2").json())["status"]["state"] ==
             "ended" and accounted(v) >= 175, 30,
             what="the end of the recording, its frames scored or counted")
    assert "recording ended" in client.get("/api/cameras/ped2").json()["status"]["reason"]
    text = client.get("/metrics").text
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert metrics['clipwatch_frames_in_total{camera="ped2"}'] == 180
    # stride 5: the last frames wait for a clip that never comes once the recording ends;
    # a machine that cannot score them all samples frames out or drops them (counted; a drop
    # also costs the frames that waited for the clip it broke, a clip's length less one)
    sampled_out = metrics.get('clipwatch_frames_sampled_out_total{camera="ped2"}', 0.0)
    dropped = metrics.get('clipwatch_frames_dropped_total{camera="ped2"}', 0.0)
    assert metrics['clipwatch_frames_scored_total{camera="ped2"}'] >= \
        175 - sampled_out - CLIP_LENGTH * dropped
    assert metrics['clipwatch_alerts_total{camera="ped2"}'] >= 1
    assert metrics["clipwatch_inference_seconds_count"] > 0
    assert 'clipwatch_frame_to_viewer_seconds_count{camera="ped2"}' in metrics
    assert "clipwatch_frames_dropped_total" in text


def test_the_viewer_is_served_without_anything_from_the_internet(live):
    client, _, _ = live
    page = client.get("/")
    assert page.status_code == 200 and "js/main.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/static/js/main.js").status_code == 200
