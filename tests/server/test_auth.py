"""Auth and bad input through the real app: tokens, logins, roles, websockets, traversal,
oversized and malformed bodies, and the refusal to listen beyond loopback without auth."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from server_helpers import ped2_clip01, replay_camera
from starlette.websockets import WebSocketDisconnect

from clipwatch.config import ApiToken, AuthConfig, Config, ConfigError, UserAccount
from clipwatch.server.app import create_app
from clipwatch.server.auth import SESSION_COOKIE, hash_password, hash_token
from clipwatch.server.run import check_exposure

ADMIN_TOKEN, VIEWER_TOKEN = "admin-token-0123456789abcdef", "viewer-token-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(shared_data, tmp_path_factory):
    config = Config(cameras=[replay_camera(ped2_clip01(shared_data), loop=True)])
    config.storage.dir = tmp_path_factory.mktemp("auth") / "store"
    config.auth = AuthConfig(
        tokens=[ApiToken(name="ops", sha256=hash_token(ADMIN_TOKEN), role="admin"),
                ApiToken(name="wall", sha256=hash_token(VIEWER_TOKEN), role="viewer")],
        users=[UserAccount(name="alice", password=hash_password("correct horse"))])
    with TestClient(create_app(config)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


NEW_CAMERA = {"id": "lobby", "source": "rtsp://10.0.0.9/stream", "enabled": False}


def test_without_credentials_only_health_and_the_page_answer(secured):
    client = secured
    client.cookies.clear()
    for path in ("/api/cameras", "/api/events", "/metrics", "/api/me", "/api/events/1"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/events/1/ack", json={"note": ""}).status_code == 401
    for path in ("/healthz", "/readyz", "/", "/static/js/main.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/cameras", headers=bearer("wrong")).status_code == 401
    assert client.get("/api/cameras", headers={"Authorization": "Basic x"}).status_code == 401


def test_roles_viewer_watches_and_acknowledges_admin_changes_cameras(secured):
    client = secured
    client.cookies.clear()
    viewer, admin = bearer(VIEWER_TOKEN), bearer(ADMIN_TOKEN)
    assert client.get("/api/cameras", headers=viewer).status_code == 200
    assert client.get("/metrics", headers=viewer).status_code == 200
    assert client.post("/api/cameras", json=NEW_CAMERA, headers=viewer).status_code == 403
    assert client.patch("/api/cameras/ped2", json={"stride": 2}, headers=viewer) \
        .status_code == 403
    assert client.delete("/api/cameras/ped2", headers=viewer).status_code == 403
    # acknowledging is a viewer's job: past auth, an unknown event is simply not found
    assert client.post("/api/events/999/ack", json={"note": "x"}, headers=viewer) \
        .status_code == 404
    assert client.post("/api/cameras", json=NEW_CAMERA, headers=admin).status_code == 201
    assert client.delete("/api/cameras/lobby", headers=admin).status_code == 204


def test_login_gives_an_httponly_samesite_session_and_logout_ends_it(secured):
    client = secured
    client.cookies.clear()
    assert client.post("/api/login", json={"name": "alice", "password": "wrong"}) \
        .status_code == 401
    assert client.post("/api/login", json={"name": "nobody", "password": "x"}).status_code == 401
    response = client.post("/api/login", json={"name": "alice", "password": "correct horse"})
    assert response.status_code == 200 and response.json()["role"] == "viewer"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert client.get("/api/me").json() == {"name": "alice", "role": "viewer", "auth": True}
    assert client.post("/api/cameras", json=NEW_CAMERA).status_code == 403
    with client.websocket_connect("/ws") as ws:  # the cookie opens the live channel too
        assert ws.receive_json()["type"] == "hello"
    assert client.post("/api/logout").status_code == 204
    client.cookies.clear()
    assert client.get("/api/me").status_code == 401


def test_websockets_require_auth(secured):
    client = secured
    client.cookies.clear()
    with client.websocket_connect("/ws") as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == 4401
    with client.websocket_connect("/ws", headers=bearer(VIEWER_TOKEN)) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_bad_bodies_paths_and_values_get_a_clear_4xx(secured):
    client = secured
    admin = bearer(ADMIN_TOKEN)
    huge = {**NEW_CAMERA, "name": "x" * 200_000}
    assert client.post("/api/cameras", json=huge, headers=admin).status_code == 413
    malformed = client.post("/api/cameras", content=b'{"id": "a", "source":',
                            headers={**admin, "Content-Type": "application/json"})
    assert malformed.status_code == 422
    assert client.post("/api/cameras", json={**NEW_CAMERA, "stride": 10**9},
                       headers=admin).status_code == 422
    assert client.post("/api/cameras", json={**NEW_CAMERA, "id": "../../etc"},
                       headers=admin).status_code == 422
    for path in ("/api/events/..%2F..%2Fetc%2Fpasswd/snapshot.jpg",
                 "/api/events/1/..%2F..%2F..%2Fevents.db", "/static/../config.py",
                 "/static/%2e%2e/%2e%2e/config.py"):
        response = client.get(path, headers=admin)
        assert response.status_code in (404, 422), path
        assert b"import" not in response.content and b"SQLite" not in response.content


def test_camera_sources_are_limited_to_the_allowed_kinds(shared_data, tmp_path):
    config = Config()
    config.storage.dir = tmp_path / "store"
    config.server.allowed_sources = ["rtsp", "rtsps"]
    with TestClient(create_app(config)) as client:
        for source in ("/etc/passwd", "file:///etc/passwd", "0", "http://10.0.0.1/mjpg"):
            response = client.post("/api/cameras", json={"id": "x", "source": source})
            assert response.status_code == 422, source
            assert "not allowed here" in response.json()["detail"]
        ok = client.post("/api/cameras", json={"id": "x", "source": "rtsp://10.0.0.1/s",
                                                 "enabled": False})
        assert ok.status_code == 201
        assert client.patch("/api/cameras/x", json={"source": "/tmp/clip.mp4"}).status_code \
            == 422


def test_the_server_refuses_to_listen_beyond_loopback_without_auth(tmp_path):
    config = Config()
    config.server.host = "0.0.0.0"
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 without auth"):
        check_exposure(config)
    config.auth = AuthConfig(tokens=[ApiToken(name="ops", sha256=hash_token("t" * 32))])
    check_exposure(config)  # with auth it may
    run = subprocess.run([sys.executable, "-m", "clipwatch", "serve", "--host", "0.0.0.0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "refusing to listen on 0.0.0.0" in run.stderr
    assert not (tmp_path / "clipwatch-data").exists()  # refused before anything started


def test_auth_cli_prints_hashes_never_the_password(tmp_path):
    run = subprocess.run([sys.executable, "-m", "clipwatch", "auth", "password", "--name",
                          "bob", "--role", "admin"], input="a long secret\n",
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "a long secret" not in run.stdout
    assert "$argon2id$" in run.stdout and "role: admin" in run.stdout
    short = subprocess.run([sys.executable, "-m", "clipwatch", "auth", "password", "--name",
                            "bob"], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and "at least 8 characters" in short.stderr


def test_admins_manage_users_and_alert_rules_viewers_cannot(secured):
    client = secured
    client.cookies.clear()
    admin, viewer = bearer(ADMIN_TOKEN), bearer(VIEWER_TOKEN)
    assert client.get("/api/users", headers=viewer).status_code == 403
    assert client.post("/api/users", json={"name": "bob", "password": "long enough"},
                       headers=viewer).status_code == 403
    assert client.post("/api/users", json={"name": "bob", "password": "short"},
                       headers=admin).status_code == 422
    assert client.post("/api/users", json={"name": "bob", "password": "long enough",
                                            "role": "admin"}, headers=admin).status_code == 201
    assert client.post("/api/users", json={"name": "bob", "password": "other one!"},
                       headers=admin).status_code == 409
    users = client.get("/api/users", headers=admin).json()
    assert {"name": "bob", "role": "admin"} in users
    assert all("password" not in u for u in users)  # hashes never leave the service
    # bob signs in; a new password ends his session
    assert client.post("/api/login", json={"name": "bob", "password": "long enough"}) \
        .json()["role"] == "admin"
    assert client.patch("/api/users/bob", json={"password": "a new secret"},
                        headers=admin).status_code == 200
    assert client.get("/api/me").status_code == 401
    client.cookies.clear()
    assert client.post("/api/login", json={"name": "bob", "password": "a new secret"}) \
        .status_code == 200
    client.cookies.clear()
    assert client.delete("/api/users/bob", headers=admin).status_code == 204
    assert client.delete("/api/users/bob", headers=admin).status_code == 404
    # alert rules: validated, applied at once
    assert client.patch("/api/settings", json={"alerts": {"open_frames": 0}},
                        headers=admin).status_code == 422
    assert client.patch("/api/settings", json={"alerts": {"open_frames": 3}},
                        headers=viewer).status_code == 403
    changed = client.patch("/api/settings", json={"alerts": {"open_frames": 3}}, headers=admin)
    assert changed.status_code == 200 and changed.json()["alerts"]["open_frames"] == 3
    service = client.app.state.service
    assert all(p.tracker.rules.open_frames == 3 for p in service.pipelines.values())


def test_the_last_admin_cannot_be_removed_without_an_admin_token(tmp_path):
    config = Config()
    config.storage.dir = tmp_path / "store"
    config.auth = AuthConfig(users=[UserAccount(name="root", role="admin",
                                                password=hash_password("correct horse"))])
    with TestClient(create_app(config)) as client:
        assert client.post("/api/login", json={"name": "root", "password": "correct horse"}) \
            .status_code == 200
        assert client.delete("/api/users/root").status_code == 409
        assert client.patch("/api/users/root", json={"role": "viewer"}).status_code == 409
        assert client.post("/api/users", json={"name": "second", "password": "long enough",
                                               "role": "admin"}).status_code == 201
        assert client.delete("/api/users/root").status_code == 204  # now there is another
