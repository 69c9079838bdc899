"""Attacks on the API of a real `clipwatch serve` with auth configured, over loopback.

Each test is one finding of the hardening review: ids SQLite cannot hold (500 before), a
resume that dropped the websocket without a close frame, readiness and the OpenAPI pages
telling anonymous callers what the service watches, pages without security headers, and a
websocket any web page could open with the operator's cookie.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from server_helpers import (
    UNPROMPTED_TYPES,
    ServerProcess,
    free_port,
    ped2_clip01,
    replay_camera,
    wait_for,
    write_config,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from clipwatch.config import ApiToken, AuthConfig
from clipwatch.server.auth import hash_token

TOKEN = "hardening-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HUGE_IDS = (2**63, 2**64, 10**30, -(2**63) - 1)


@pytest.fixture(scope="module")
def server(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening_api")
    auth = AuthConfig(tokens=[ApiToken(name="ops", sha256=hash_token(TOKEN), role="admin")])
    camera = replay_camera(ped2_clip01(shared_data))  # plays once: the camera stays listed
    process = ServerProcess(write_config(folder, [camera], auth=auth), free_port(),
                            folder / "serve.log")
    process.start()
    wait_for(lambda: "ped2" in request(process, "GET", "/readyz", BEARER)[2].decode(), 30,
             what="the camera in the readiness details")
    yield process
    process.stop()


def request(server, method: str, path: str, headers: dict | None = None,
            body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one real HTTP request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server.url}{path}", data=data, method=method,
                                 headers={**(headers or {}),
                                          **({"Content-Type": "application/json"}
                                             if data else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, \
                response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


def reply(ws, timeout: float = 10.0) -> dict:
    """The next JSON message that is not a broadcast (nor a video frame)."""
    while True:
        message = ws.recv(timeout=timeout)
        if isinstance(message, bytes):
            continue
        data = json.loads(message)
        if data["type"] not in UNPROMPTED_TYPES:
            return data


def test_event_ids_sqlite_cannot_hold_are_refused_not_a_server_error(server):
    for event_id in HUGE_IDS:
        for method, path, body in (("GET", f"/api/events/{event_id}", None),
                                   ("POST", f"/api/events/{event_id}/ack", {"note": "x"}),
                                   ("GET", f"/api/events/{event_id}/snapshot.jpg", None),
                                   ("GET", f"/api/events/{event_id}/heatmap.jpg", None)):
            status, _, text = request(server, method, path, BEARER, body)
            assert status in (404, 422), (method, path, status, text[:200])
    # an id SQLite can hold that names no event is simply not found
    assert request(server, "GET", f"/api/events/{2**63 - 1}", BEARER)[0] == 404
    # and the store still takes writes afterwards (a failed ack left no transaction open)
    status, _, body = request(server, "GET", "/readyz", BEARER)
    assert status == 200 and json.loads(body)["store_writable"] is True
    assert "Traceback" not in server.log_path.read_text()


def test_a_resume_from_an_impossible_sequence_number_gets_an_error_reply(server):
    with connect(ws_url(server), additional_headers=BEARER) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        for since in ("1e23", str(2**64), "1e400"):
            ws.send(f'{{"type": "resume", "since": {since}}}')
            answer = reply(ws)
            assert answer["type"] == "error" and "since" in answer["message"], answer
        ws.send(json.dumps({"type": "ping"}))  # the connection carries on
        assert reply(ws)["type"] == "pong"
        ws.send(json.dumps({"type": "resume", "since": 0}))  # a good resume still works
        ws.send(json.dumps({"type": "ping"}))
        assert reply(ws)["type"] == "pong"


def test_anonymous_readiness_says_ready_or_not_and_nothing_else(server):
    status, _, body = request(server, "GET", "/readyz")
    assert status == 200 and json.loads(body) == {"ready": True}
    assert b"ped2" not in body
    status, _, body = request(server, "GET", "/readyz", BEARER)  # signed in: the details
    details = json.loads(body)
    assert status == 200 and details["ready"] is True and "ped2" in details["cameras"]
    assert details["model"] and details["store_writable"] is True


def test_the_api_documentation_needs_a_signed_in_caller(server):
    for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"):
        status, _, body = request(server, "GET", path)
        assert status in (401, 404), (path, status)
        assert b"/api/cameras" not in body
    status, headers, body = request(server, "GET", "/openapi.json", BEARER)
    assert status == 200 and "/api/cameras" in json.loads(body)["paths"]
    status, headers, body = request(server, "GET", "/docs", BEARER)
    assert status == 200 and b"swagger-ui" in body
    # the Swagger page's own policy: its CDN, and its one inline script by hash
    assert "'sha256-" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"].split("script-src")[1] \
        .split(";")[0]


def test_every_answer_carries_the_security_headers(server):
    answers = {
        "the viewer": request(server, "GET", "/"),
        "a module": request(server, "GET", "/static/js/main.js"),
        "the stylesheet": request(server, "GET", "/static/viewer.css"),
        "an API answer": request(server, "GET", "/api/cameras", BEARER),
        "a refusal": request(server, "GET", "/api/cameras"),
        "a missing file": request(server, "GET", "/static/nothing.js"),
        "a health check": request(server, "GET", "/healthz"),
    }
    for what, (status, headers, _) in answers.items():
        assert status in (200, 401, 404), (what, status)
        policy = headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, what
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy, what
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, what
        assert headers.get("x-frame-options") == "DENY", what
        assert headers.get("x-content-type-options") == "nosniff", what
    assert answers["a module"][1]["content-type"].startswith("text/javascript")


def test_a_websocket_from_a_page_of_another_origin_is_refused(server):
    port = server.port
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null",
                   f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}",
                   f"http://localhost.evil.example:{port}"):
        with pytest.raises((InvalidStatus, ConnectionClosed)) as refused, \
                connect(ws_url(server), origin=origin, additional_headers=BEARER) as ws:
            ws.recv(timeout=10)  # a hello here would mean it was let in
        if isinstance(refused.value, InvalidStatus):
            assert refused.value.response.status_code == 403, origin
        else:
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403, origin
    # the viewer's own page, and a client that sends no Origin (an integration), get in
    for origin in (f"http://127.0.0.1:{port}", None):
        with connect(ws_url(server), origin=origin, additional_headers=BEARER) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello", origin
