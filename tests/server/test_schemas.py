"""The API's contract: signed in by default, typed answers, the websocket's messages in the
OpenAPI document, and domain errors turned into HTTP statuses by one handler.

Routes are enumerated from the app itself, so a new route is covered without editing this
file: it must either answer 401 to an anonymous caller or be added to PUBLIC on purpose.
"""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from clipwatch.config import ApiToken, AuthConfig, Config
from clipwatch.errors import ClipwatchError
from clipwatch.server.app import create_app
from clipwatch.server.auth import hash_token, is_public, routes_of
from clipwatch.server.errors import STATUS, LastAdmin, UnknownEvent, status_of
from clipwatch.server.event_store import StoreError
from clipwatch.server.messages import (
    CLIENT_MESSAGE_TYPES,
    CLIENT_MESSAGES,
    SERVER_MESSAGE_TYPES,
    SERVER_MESSAGES,
    AlertMessage,
    CamerasMessage,
    ErrorMessage,
    FrameHeader,
    HelloMessage,
    LearningMessage,
    PongMessage,
    RecordingMessage,
    ScoreMessage,
    StatusMessage,
    message_type,
)
from clipwatch.server.service import CameraConflict, UnknownCamera

ADMIN_TOKEN, VIEWER_TOKEN = "admin-token-0123456789abcdef", "viewer-token-0123456789abcdef"

# Everything an anonymous caller may reach when auth is configured, and nothing more.
PUBLIC = {
    ("GET", "/healthz"), ("GET", "/readyz"),                # health checks
    ("POST", "/api/login"), ("POST", "/api/logout"),       # signing in and out
    ("GET", "/"), ("MOUNT", "/static"),                    # the viewer's page and files
    ("WEBSOCKET", "/ws"),                                  # checks credentials itself: 4401
}  # /docs and /openapi.json are not: they show the whole API (open only without auth)
PATH_PARAMS = {"camera_id": "lobby", "event_id": "1", "name": "alice"}
SERVER_TYPES = {"hello", "score", "status", "cameras", "alert", "recording", "learning",
                "error", "pong"}
CLIENT_TYPES = {"subscribe", "resume", "ping"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    config = Config()
    config.storage.dir = tmp_path_factory.mktemp("schemas") / "store"
    config.auth = AuthConfig(tokens=[
        ApiToken(name="ops", sha256=hash_token(ADMIN_TOKEN), role="admin"),
        ApiToken(name="wall", sha256=hash_token(VIEWER_TOKEN), role="viewer")])
    with TestClient(create_app(config)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def served(app) -> list[tuple[str, str, object]]:
    """(method, path, route info) of everything the app serves; a mount is one 'MOUNT'."""
    found = []
    for info in routes_of(app.routes):
        for method in sorted(info.methods - {"HEAD"}) or ["MOUNT"]:
            found.append((method, info.path, info))
    return found


def anonymous_may(info) -> bool:
    # FastAPI's documentation routes and mounts sit outside the app's dependencies.
    if hasattr(info.route, "dependant"):
        return is_public(info.endpoint)
    return True


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_PARAMS.get(m[1], "1"), path)


def references(node) -> list[str]:
    """The component names every `$ref` in a JSON document points at."""
    if isinstance(node, dict):
        found = [node["$ref"].split("/")[-1]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in references(value)]
    if isinstance(node, list):
        return [r for value in node for r in references(value)]
    return []


def test_every_route_needs_a_principal_unless_it_is_public_on_purpose(secured):
    client = secured
    client.cookies.clear()
    routes = served(client.app)
    assert {(method, path) for method, path, info in routes if anonymous_may(info)} == PUBLIC
    refused = []
    for method, path, info in routes:
        if anonymous_may(info):
            continue
        response = client.request(method, concrete(path))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "sign in or send a valid API token"}
        refused.append((method, path))
    assert ("GET", "/metrics") in refused and ("DELETE", "/api/cameras/{camera_id}") in refused
    assert len(refused) >= 18  # every REST route but the public ones
    # the public ones answer without credentials
    for method, path in PUBLIC - {("MOUNT", "/static"), ("WEBSOCKET", "/ws")}:
        response = client.request(method, path, json={"name": "nobody", "password": "x"}
                                  if path == "/api/login" else None)
        if path == "/api/login":
            assert response.json() == {"detail": "wrong name or password"}
        else:
            assert response.status_code in (200, 204, 503), (method, path)
    assert client.get("/static/js/main.js").status_code == 200
    with client.websocket_connect("/ws") as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 4401


def test_a_viewer_passes_the_default_and_admin_routes_still_need_an_admin(secured):
    client = secured
    client.cookies.clear()
    viewer = bearer(VIEWER_TOKEN)
    for path in ("/api/cameras", "/api/events", "/metrics", "/api/me"):
        assert client.get(path, headers=viewer).status_code == 200, path
    for path in ("/api/users", "/api/settings"):
        assert client.get(path, headers=viewer).status_code == 403, path
        assert client.get(path, headers=bearer(ADMIN_TOKEN)).status_code == 200, path


def test_without_auth_every_route_answers_anonymous_callers(tmp_path):
    config = Config()
    config.storage.dir = tmp_path / "store"
    with TestClient(create_app(config)) as client:
        for method, path, info in served(client.app):
            if method == "GET" and "{" not in path and not anonymous_may(info):
                assert client.get(path).status_code == 200, path
        assert client.get("/api/me").json() == {"name": "local", "role": "admin", "auth": False}


def test_the_openapi_document_types_every_rest_answer(secured):
    client = secured
    document = client.get("/openapi.json", headers=bearer(VIEWER_TOKEN)).json()
    schemas = document["components"]["schemas"]
    operations = 0
    for method, path, info in served(client.app):
        if not info.in_schema:
            continue
        operation = document["paths"][path][method.lower()]
        operations += 1
        status = str(info.route.status_code or 200)
        answer = operation["responses"][status]
        if status == "204":
            assert "content" not in answer, (method, path)
        elif "application/json" in answer["content"]:
            schema = answer["content"]["application/json"]["schema"]
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            assert ref and ref.split("/")[-1] in schemas, (method, path, schema)
        else:  # images, clips and the metrics: their media type, not an untyped JSON body
            assert len(answer["content"]) == 1, (method, path)
            assert set(answer["content"]) <= {"image/jpeg", "video/webm", "video/mp4",
                                              "text/plain"}, (method, path)
        if is_public(info.endpoint):
            assert operation["security"] == [], (method, path)
        else:
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] \
                == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    assert operations >= 22
    assert document["security"] == [{"token": []}, {"session": []}]
    assert set(document["components"]["securitySchemes"]) == {"token", "session"}
    camera = schemas["CameraView"]["properties"]
    for field in ("id", "source", "status", "effective_threshold", "frames_in", "frames_scored",
                  "frames_dropped", "frames_sampled_out", "fps_in", "sampled_fps",
                  "regularity", "active_calibration"):
        assert field in camera, field
    assert set(schemas["EventPage"]["properties"]) == {"items", "total", "limit", "offset"}
    assert document["paths"]["/readyz"]["get"]["responses"]["503"]["content"][
        "application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}
    assert "403" in document["paths"]["/api/users"]["get"]["responses"]
    assert "409" in document["paths"]["/api/cameras"]["post"]["responses"]
    # every reference in the document resolves
    refs = set(references(document))
    assert refs and refs <= set(schemas), refs - set(schemas)


def test_the_websocket_messages_are_documented_in_openapi(secured):
    client = secured
    document = client.get("/openapi.json", headers=bearer(VIEWER_TOKEN)).json()
    schemas = document["components"]["schemas"]
    server = schemas["ServerMessage"]
    assert server["discriminator"]["propertyName"] == "type"
    assert set(server["discriminator"]["mapping"]) == SERVER_TYPES
    assert set(schemas["ClientMessage"]["discriminator"]["mapping"]) == CLIENT_TYPES
    for ref in server["discriminator"]["mapping"].values():
        model = schemas[ref.split("/")[-1]]
        assert "type" in model["required"] and model["additionalProperties"] is False
    assert schemas["AlertMessage"]["properties"]["alert"] == {"$ref": "#/components/schemas/Event"}
    assert set(schemas["AlertMessage"]["properties"]["event"]["enum"]) == \
        {"start", "update", "end", "ack"}
    assert set(schemas["FrameHeader"]["properties"]) == {"camera", "frame", "captured_at",
                                                         "overlay"}
    assert set(schemas["SubscribeMessage"]["properties"]) == {"type", "cameras", "video",
                                                              "overlay"}
    websocket = document["x-websocket"]
    assert websocket["path"] == "/ws"
    assert websocket["server_messages"] == {"$ref": "#/components/schemas/ServerMessage"}
    assert websocket["client_messages"] == {"$ref": "#/components/schemas/ClientMessage"}
    assert websocket["binary_frame_header"] == {"$ref": "#/components/schemas/FrameHeader"}
    # a reader of /docs finds it at the top of the page
    assert "WS /ws" in document["info"]["description"]
    assert "ServerMessage" in document["info"]["description"]
    assert client.get("/docs", headers=bearer(VIEWER_TOKEN)).status_code == 200


def test_each_message_type_has_a_constructor_that_builds_its_wire_form():
    assert {message_type(m) for m in SERVER_MESSAGE_TYPES} == SERVER_TYPES
    assert {message_type(m) for m in CLIENT_MESSAGE_TYPES} == CLIENT_TYPES
    view = {"id": "gate", "source": "rtsp://cam/1", "status": {"state": "live", "reason": None,
                                                               "since": 1.0},
            "effective_threshold": 0.7, "fps_in": 10.0, "sampled_fps": None, "frames_in": 5,
            "frames_scored": 4, "frames_dropped": 0, "frames_sampled_out": 0,
            "regularity": 0.9, "active_calibration": None}
    event = {"id": 1, "camera": "gate", "state": "open", "started_at": 1.0, "ended_at": None,
             "updated_at": 2.0, "start_frame": 10, "lowest_regularity": 0.3, "worst_frame": 12,
             "worst_at": 1.5, "threshold": 0.5, "frames": 5, "acknowledged": False,
             "ack_note": None, "acknowledged_at": None, "snapshot_url": None,
             "heatmap_url": None}
    built = [
        HelloMessage(server_time=time.time(), last_seq=0, cameras=[view]),
        ScoreMessage(camera="gate", frame=3, captured_at=1.0, regularity=None, error=12.5,
                     threshold=0.7, alerting=False),
        StatusMessage(camera="gate", state="lost", reason="timeout", since=1.0),
        CamerasMessage(cameras=[view]),
        AlertMessage(seq=1, event="start", alert=event),
        RecordingMessage(recording={
            "id": "gate-20261129-101500", "camera": "gate", "state": "waiting", "minutes": 10.0,
            "spread_hours": 24.0, "fps": 10.0, "keep_alerts": False, "seconds_kept": 60.0,
            "progress": 0.1, "frames": 600, "chunks": 5, "bytes": 13_000_000, "left_out": 12,
            "next_at": 3.0, "created_at": 1.0, "finished_at": None, "error": None}),
        LearningMessage(job={
            "id": "0123456789ab", "camera": "gate", "recording": "gate-20261129-101500",
            "name": "gate", "from_model": "ucsd_ped2.onnx", "scratch": False,
            "train_minutes": 20.0, "state": "running", "created_at": 1.0, "finished_at": None,
            "model": None, "error": None, "result": None, "launches": 1, "yielding": True,
            "yielded_seconds": 4.5, "progress": {"stage": "train", "step": 12, "steps": 700,
                                                 "loss": 0.01, "clips_per_s": 3.5,
                                                 "eta_s": 600.0}}),
        ErrorMessage(message="nope"),
        PongMessage(server_time=1.0),
    ]
    for message in built:
        wire = message.wire()
        assert wire["type"] == message_type(type(message))
        assert SERVER_MESSAGES.validate_python(wire) == message  # the same message back
    assert ScoreMessage(camera="gate", frame=3, captured_at=1.0, regularity=0.5, error=1.0,
                        threshold=0.7, alerting=True).wire() == {
        "type": "score", "camera": "gate", "frame": 3, "captured_at": 1.0, "regularity": 0.5,
        "error": 1.0, "threshold": 0.7, "alerting": True, "zones": {}}  # no zones: {}
    with pytest.raises(ValueError):
        StatusMessage(camera="gate", state="asleep", reason=None, since=1.0)
    with pytest.raises(ValueError):
        ScoreMessage(camera="gate", frame=3, captured_at=1.0, regularity=None, error=1.0,
                     threshold=None, alerting=False, extra=1)
    assert FrameHeader(camera="gate", frame=3, captured_at=1.0, overlay=True).model_dump() == \
        {"camera": "gate", "frame": 3, "captured_at": 1.0, "overlay": True}
    assert CLIENT_MESSAGES.validate_python({"type": "subscribe"}).cameras == ["*"]
    assert CLIENT_MESSAGES.validate_python({"type": "resume", "since": 4}).since == 4


def test_domain_errors_become_http_statuses_in_one_handler(secured):
    client = secured
    admin = bearer(ADMIN_TOKEN)
    camera = {"id": "lobby", "source": "rtsp://10.0.0.9/stream", "enabled": False}
    assert client.post("/api/cameras", json=camera, headers=admin).status_code == 201
    conflict = client.post("/api/cameras", json=camera, headers=admin)
    assert conflict.status_code == 409
    assert conflict.json() == {"detail": "camera 'lobby' already exists"}
    missing = client.get("/api/cameras/nope", headers=admin)
    assert missing.status_code == 404 and missing.json() == {"detail": "no camera 'nope'"}
    assert client.get("/api/events/77", headers=admin).json() == {"detail": "no event 77"}
    assert client.get("/api/events/77/heatmap.jpg", headers=admin).json() == \
        {"detail": "event 77 has no heatmap"}
    # valid as a patch, invalid once merged into the camera
    invalid = client.patch("/api/cameras/lobby", json={"source": " rtsp://x"}, headers=admin)
    assert invalid.status_code == 422
    assert invalid.json()["detail"].startswith("source: ")
    assert client.delete("/api/cameras/lobby", headers=admin).status_code == 204
    # a store that refuses writes: 503 with its message, from the same handler
    store = client.app.state.service.store

    def refuse(event_id, note):
        raise StoreError("cannot acknowledge event 1: disk I/O error")

    original, store.acknowledge = store.acknowledge, refuse
    try:
        refused = client.post("/api/events/1/ack", json={"note": ""}, headers=admin)
    finally:
        store.acknowledge = original
    assert refused.status_code == 503
    assert refused.json() == {"detail": "cannot acknowledge event 1: disk I/O error"}


def test_the_status_table_maps_each_class_and_its_subclasses():
    class GoneCamera(UnknownCamera):
        pass

    assert status_of(UnknownCamera("x")) == 404 and status_of(GoneCamera("x")) == 404
    assert status_of(CameraConflict("x")) == 409 and status_of(LastAdmin("x")) == 409
    assert status_of(UnknownEvent("x")) == 404
    assert status_of(StoreError("x")) == 503
    assert status_of(ClipwatchError("x")) == 500
    assert all(400 <= status < 600 for status in STATUS.values())
