"""/api/sinks on the real app: list, add (written back to the config file), remove, test;
admins only for changes; secrets and passwords never in an answer; the network policy for
sinks added through the API; the status and metrics of a real delivery."""

from __future__ import annotations

import time

import pytest
import yaml
from fastapi.testclient import TestClient
from server_helpers import wait_for
from sink_helpers import WebhookReceiver

from clipwatch.config import ApiToken, AuthConfig, Config, load_config, save_config
from clipwatch.server.alerts import Alert
from clipwatch.server.app import create_app
from clipwatch.server.auth import hash_token
from clipwatch.server.sinks.payload import SIGNATURE_HEADER

SECRET = "api-added-webhook-secret"
ADMIN, VIEWER = "admin-token-for-sinks", "viewer-token-for-sinks"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sinks-api")
    config = Config(auth=AuthConfig(tokens=[
        ApiToken(name="root", sha256=hash_token(ADMIN), role="admin"),
        ApiToken(name="ops", sha256=hash_token(VIEWER), role="viewer")]))
    config.storage.dir = folder / "store"
    config.server.allowed_networks = ["127.0.0.1/32"]  # the test's receiver runs here
    path = folder / "clipwatch.yaml"
    save_config(config, path)
    receiver = WebhookReceiver(SECRET)
    app = create_app(load_config(path), path)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client, path, receiver, app.state.service
    receiver.close()


def as_viewer() -> dict:
    return {"Authorization": f"Bearer {VIEWER}"}


def test_an_admin_adds_a_webhook_it_is_written_back_and_its_secret_never_shown(api):
    client, path, receiver, _ = api
    body = {"id": "ops", "kind": "webhook", "url": receiver.url, "secret": SECRET,
            "cameras": ["gate"], "transitions": ["start", "end"], "timeout_s": 2}
    answer = client.post("/api/sinks", json=body)
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert view["id"] == "ops" and view["signed"] is True and "secret" not in view
    assert view["cameras"] == ["gate"] and view["status"]["state"] in ("starting", "ok")
    saved = yaml.safe_load(path.read_text())["sinks"]
    assert saved[0]["secret"] == SECRET and saved[0]["url"] == receiver.url
    listed = client.get("/api/sinks", headers=as_viewer())  # viewers see sinks and status
    assert listed.status_code == 200 and SECRET not in listed.text
    assert client.post("/api/sinks", json=body).status_code == 409


def test_the_test_button_sends_a_signed_message_and_says_what_happened(api):
    client, _, receiver, _ = api
    if not any(s["id"] == "ops" for s in client.get("/api/sinks").json()):
        pytest.skip("needs the sink of the test before")
    answer = client.post("/api/sinks/ops/test")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["delivered"] is True and result["detail"].startswith("HTTP 204")
    arrived, message, signed, headers = receiver.accepted[-1]
    assert message["type"] == "test" and message["sink"] == "ops" and signed
    assert headers[SIGNATURE_HEADER].startswith("sha256=")
    receiver.mode = "fail"
    try:
        failed = client.post("/api/sinks/ops/test").json()
    finally:
        receiver.mode = "ok"
    assert failed == {"delivered": False, "detail": "the receiver answered HTTP 500 "
                      "Internal Server Error", "seconds": failed["seconds"]}
    assert client.post("/api/sinks/nope/test").status_code == 404
    assert client.post("/api/sinks/ops/test", headers=as_viewer()).status_code == 403


def test_alerts_reach_the_added_sink_through_its_filters_with_status_and_metrics(api):
    client, _, receiver, service = api
    if not any(s["id"] == "ops" for s in client.get("/api/sinks").json()):
        pytest.skip("needs the sink of the test before")
    before = len(receiver.messages())
    store, now = service.store, time.time()
    for camera in ("lobby", "gate"):  # only the gate's start and end pass the filters
        seq, event = store.record("start", Alert(camera, now, 1, 0.2, 2, now, 0.5, 3, now))
        store.record("update", Alert(camera, now, 1, 0.1, 2, now, 0.5, 4, now + 1,
                                     id=event["id"]))
        store.record("end", Alert(camera, now, 1, 0.1, 2, now, 0.5, 9, now + 2,
                                  ended_at=now + 2, id=event["id"]))
    wait_for(lambda: len(receiver.messages()) >= before + 2, 10, interval=0.02,
             what="the gate's start and end")
    got = receiver.messages()[before:]
    assert [(m["event"], m["alert"]["camera"]) for m in got] == [("start", "gate"),
                                                                 ("end", "gate")]
    wait_for(lambda: client.get("/api/sinks/ops").json()["status"]["backlog"] == 0, 5,
             interval=0.02, what="the last answer")
    status = client.get("/api/sinks/ops").json()["status"]
    assert status["delivered"] >= 2 and status["filtered"] >= 4 and status["backlog"] == 0
    assert status["last_success_at"] is not None
    metrics = client.get("/metrics").text
    assert 'clipwatch_sink_delivered_total{sink="ops"}' in metrics
    assert 'clipwatch_sink_delivery_seconds_count{sink="ops"}' in metrics


def test_mqtt_passwords_are_masked_and_bad_sinks_refused_in_one_line(api):
    client, _, _, _ = api
    answer = client.post("/api/sinks", json={"id": "site", "kind": "mqtt", "enabled": False,
                                             "url": "mqtt://cams:hunter2@127.0.0.1:1883"})
    assert answer.status_code == 201, answer.text
    assert "hunter2" not in answer.text and answer.json()["url"].startswith("mqtt://cams:")
    assert answer.json()["status"]["state"] == "disabled"
    assert "hunter2" not in client.get("/api/sinks").text
    assert client.post("/api/sinks/site/test").status_code == 409  # disabled: nothing to test
    for body, where in [
        ({"id": "a", "kind": "webhook", "url": "http://127.0.0.1/x"}, "secret"),
        ({"id": "a", "kind": "mqtt", "url": "mqtt://127.0.0.1", "secret": "s" * 16}, "secret"),
        ({"id": "a", "kind": "webhook", "url": "ftp://h/x", "secret": "s" * 16}, "http"),
        ({"id": "a", "kind": "mqtt", "url": "mqtt://h", "topic": "a/+/b"}, "topic"),
        ({"id": "a", "kind": "mqtt", "url": "mqtt://h", "colour": "red"}, "colour"),
    ]:
        refused = client.post("/api/sinks", json=body)
        assert refused.status_code == 422 and where in refused.text, (body, refused.text)
        assert "s" * 16 not in refused.text  # a refused body is never echoed
    denied = client.post("/api/sinks", json={"id": "meta", "kind": "webhook", "secret": SECRET,
                                             "url": "http://169.254.169.254/latest"})
    assert denied.status_code == 422 and "denied_networks" in denied.json()["detail"]
    assert client.post("/api/sinks", headers=as_viewer(), json={
        "id": "b", "kind": "mqtt", "url": "mqtt://h"}).status_code == 403


def test_an_admin_removes_a_sink_and_the_config_forgets_it(api):
    client, path, _, service = api
    client.post("/api/sinks", json={"id": "gone", "kind": "mqtt", "enabled": False,
                                    "url": "mqtt://127.0.0.1:1"})
    assert client.delete("/api/sinks/gone", headers=as_viewer()).status_code == 403
    assert client.delete("/api/sinks/gone").status_code == 204
    assert client.delete("/api/sinks/gone").status_code == 404
    assert client.get("/api/sinks/gone").status_code == 404
    assert "gone" not in [s["id"] for s in yaml.safe_load(path.read_text()).get("sinks", [])]
    assert service.store.sink_cursor("gone") is None
