"""Alert sinks on the real event store, without the model: synthetic alert transitions are
stored as the pipeline stores them, and a real HTTP receiver and a real mosquitto broker
receive them. Filters, signatures, order, the durable outbox across a restart, the bound,
a broker that is down when the service starts, and the delivery latency (reported in
test-artifacts/sink-latency.json)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from server_helpers import wait_for
from sink_helpers import Mosquitto, MqttSubscriber, WebhookReceiver, make_tls_files

from clipwatch.config import Config, SinkConfig
from clipwatch.server.alerts import Alert
from clipwatch.server.event_store import EventStore
from clipwatch.server.metrics import Metrics
from clipwatch.server.sinks import SinkManager
from clipwatch.server.sinks.payload import SinkAlertMessage

SECRET = "a-webhook-secret-of-some-length"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FAST = dict(timeout_s=1.0, retry_min_s=0.05, retry_max_s=0.2)  # quick retries for tests


def webhook(url: str, **changes) -> SinkConfig:
    return SinkConfig(**{"id": "ops", "kind": "webhook", "url": url, "secret": SECRET,
                         **FAST, **changes})


def mqtt_sink(port: int, **changes) -> SinkConfig:
    return SinkConfig(**{"id": "site", "kind": "mqtt", "url": f"mqtt://127.0.0.1:{port}",
                         "topic": "cw", **FAST, **changes})


def manager_for(store: EventStore, *sinks: SinkConfig, public_url: str | None = None):
    config = Config(sinks=list(sinks))
    config.server.public_url = public_url
    manager = SinkManager(config, store, Metrics(), threading.RLock(), lambda: None)
    manager.start()
    wait_for(lambda: all(w.cursor is not None for w in manager.workers.values()), 5,
             interval=0.01, what="the sinks to start")
    return manager


def alert(camera="a", started=None, **changes) -> Alert:
    started = time.time() if started is None else started
    fields = dict(camera=camera, started_at=started, start_frame=10, lowest_regularity=0.3,
                  worst_frame=12, worst_at=started, threshold=0.5, frames=5,
                  updated_at=started)
    fields.update(changes)
    return Alert(**fields)


def raise_alert(store: EventStore, camera="a", lowest=0.3, zone=None, updates=1,
                images=True) -> list[int]:
    """start, `updates` updates, end of one alert, as the pipeline stores them: the seqs."""
    shots = {"snapshot": b"\xff\xd8 jpeg", "heatmap": b"\xff\xd8 heat"} if images else None
    seq, event = store.record("start", alert(camera, lowest_regularity=lowest, zone=zone), shots)
    seqs, event_id = [seq], event["id"]
    for _ in range(updates):
        seqs.append(store.record("update", alert(camera, id=event_id, lowest_regularity=lowest,
                                                 zone=zone))[0])
    seqs.append(store.record("end", alert(camera, id=event_id, lowest_regularity=lowest,
                                          zone=zone, ended_at=time.time()))[0])
    return seqs


@pytest.fixture
def receiver():
    r = WebhookReceiver(SECRET)
    yield r
    r.close()


def test_webhooks_are_signed_in_order_with_links_and_only_what_the_filters_let_through(
        tmp_path, receiver):
    store = EventStore(tmp_path / "store")
    raise_alert(store)  # before the sink existed: a new sink starts from now
    manager = manager_for(store, webhook(receiver.url, cameras=["a"], zones=["door", None],
                                         min_severity=0.1, transitions=["start", "end", "ack"]),
                          public_url="https://cams.example.com/cw/")
    try:
        wanted = raise_alert(store, "a", lowest=0.3)  # severity 0.2
        raise_alert(store, "b", lowest=0.1)  # another camera
        raise_alert(store, "a", lowest=0.45)  # severity 0.05: too mild
        raise_alert(store, "a", zone="bench")  # another zone
        in_zone = raise_alert(store, "a", zone="door")
        ack_seq, acked = store.acknowledge(store.list(camera="a")[0][-1]["id"], "seen")
        expected = [wanted[0], wanted[-1], in_zone[0], in_zone[-1], ack_seq]
        wait_for(lambda: len(receiver.messages()) >= len(expected), 10, interval=0.02,
                 what="the webhooks")
        time.sleep(0.2)  # nothing more comes
        got = receiver.messages()
        assert [m["seq"] for m in got] == expected
        assert [m["event"] for m in got] == ["start", "end", "start", "end", "ack"]
        assert all(ok for _, _, ok, _ in receiver.accepted)  # every signature verifies
        for message in got:
            SinkAlertMessage.model_validate(message)  # the documented shape
        first = got[0]
        assert first["sink"] == "ops" and first["severity"] == pytest.approx(0.2)
        assert first["alert"]["snapshot_url"] == \
            f"https://cams.example.com/cw/api/events/{first['alert']['id']}/snapshot.jpg"
        assert first["alert"]["heatmap_url"].startswith("https://cams.example.com/cw/api/")
        headers = receiver.accepted[0][3]
        assert headers["X-Clipwatch-Seq"] == str(expected[0])
        assert headers["X-Clipwatch-Event"] == "start"
        assert headers["Content-Type"] == "application/json"
        status = manager.view("ops")["status"]
        assert status["delivered"] == 5 and status["backlog"] == 0 and status["failures"] == 0
        assert status["filtered"] == 16 - 5 and status["last_seq"] == ack_seq
        assert acked["acknowledged"] is True
    finally:
        manager.stop()


def test_what_a_down_receiver_missed_survives_a_restart_and_arrives_in_order(tmp_path,
                                                                            receiver):
    store = EventStore(tmp_path / "store")
    manager = manager_for(store, webhook(receiver.url))
    receiver.mode = "fail"
    seqs = raise_alert(store, updates=3) + raise_alert(store, "b", updates=0)
    wait_for(lambda: manager.view("ops")["status"]["failures"] >= 2, 10, interval=0.02,
             what="failed tries")
    view = manager.view("ops")
    assert view["status"]["state"] == "failing" and view["status"]["backlog"] == len(seqs)
    assert "HTTP 500" in view["status"]["last_error"]
    manager.stop(drain_s=0)  # the service stops with the messages still held
    store.close()

    receiver.mode = "ok"
    store = EventStore(tmp_path / "store")  # the next run, the same database
    seqs += raise_alert(store, "c", updates=0)
    manager = manager_for(store, webhook(receiver.url))
    try:
        wait_for(lambda: len(receiver.messages()) >= len(seqs), 10, interval=0.02,
                 what="the held messages")
        assert [m["seq"] for m in receiver.messages()] == seqs
        # the cursor moves once the answer is in (just after the receiver recorded it)
        wait_for(lambda: store.sink_cursor("ops") == seqs[-1], 5, interval=0.01,
                 what="the cursor to be stored")
    finally:
        manager.stop()


def test_a_sink_further_behind_than_its_bound_skips_the_oldest_and_counts_them(tmp_path,
                                                                              receiver):
    store = EventStore(tmp_path / "store")
    manager = manager_for(store, webhook(receiver.url, max_backlog=4))
    try:
        receiver.mode = "fail"
        seqs = raise_alert(store, updates=8)  # 10 messages
        wait_for(lambda: manager.view("ops")["status"]["skipped"] >= 6, 10, interval=0.02,
                 what="the oldest to be skipped")
        receiver.mode = "ok"
        wait_for(lambda: len(receiver.messages()) >= 4, 10, interval=0.02, what="the newest")
        assert [m["seq"] for m in receiver.messages()] == seqs[-4:]
        wait_for(lambda: manager.view("ops")["status"]["delivered"] == 4, 5, interval=0.01,
                 what="the last answer")
        assert manager.view("ops")["status"]["skipped"] == 6
        text = metrics_text(manager)
        assert 'clipwatch_sink_skipped_total{sink="ops"} 6.0' in text
        assert 'clipwatch_sink_delivered_total{sink="ops"} 4.0' in text
        assert 'clipwatch_sink_backlog{sink="ops"}' in text
    finally:
        manager.stop()


def test_a_message_older_than_max_age_is_skipped(tmp_path, receiver):
    store = EventStore(tmp_path / "store")
    manager = manager_for(store, webhook(receiver.url, max_age_hours=1))
    try:
        old = time.time() - 2 * 3600
        stale, event = store.record("start", alert(started=old))  # a message dated 2 h ago
        fresh = raise_alert(store, "b", updates=0)
        wait_for(lambda: len(receiver.messages()) >= 2, 10, interval=0.02, what="webhooks")
        assert [m["seq"] for m in receiver.messages()] == fresh
        assert manager.view("ops")["status"]["skipped"] == 1
    finally:
        manager.stop()


def metrics_text(manager: SinkManager) -> str:
    from prometheus_client import generate_latest

    return generate_latest(manager.metrics.registry).decode()


def test_an_mqtt_sink_whose_broker_is_down_at_start_connects_by_itself(tmp_path):
    broker = Mosquitto(tmp_path / "broker")  # not started yet
    store = EventStore(tmp_path / "store")
    config = Config(sinks=[mqtt_sink(broker.port)])
    manager = SinkManager(config, store, Metrics(), threading.RLock(), lambda: None)
    manager.start()
    subscriber = None
    try:
        wait_for(lambda: manager.view("site")["status"]["last_seq"] is not None, 5,
                 interval=0.01, what="the sink to start")
        seqs = raise_alert(store, updates=1)
        wait_for(lambda: manager.view("site")["status"]["failures"] >= 1, 10, interval=0.05,
                 what="a failed try")
        view = manager.view("site")
        assert view["status"]["connected"] is False and view["status"]["backlog"] == 3
        assert "broker" in view["status"]["last_error"]
        broker.start()
        subscriber = MqttSubscriber(broker.port, "cw/#").start()
        wait_for(lambda: len(subscriber.received) >= 3, 15, interval=0.05,
                 what="the held messages")
        assert [m["seq"] for _, _, m in subscriber.received] == seqs
        event_id = subscriber.received[0][2]["alert"]["id"]
        assert [t for _, t, _ in subscriber.received] == [
            f"cw/a/{event_id}/{kind}" for kind in ("start", "update", "end")]
        assert manager.view("site")["status"]["connected"] is True
        assert manager.test("site")["delivered"] is True
        wait_for(lambda: any(t == "cw/_test" for _, t, _ in subscriber.received), 5,
                 interval=0.02, what="the test message")
    finally:
        manager.stop()
        if subscriber:
            subscriber.stop()
        broker.stop()


def test_delivery_latency_to_a_webhook_and_an_mqtt_broker(tmp_path, receiver):
    """Stored to received, over a burst of alerts at a steady rate (reported, not asserted
    beyond sanity: speed belongs to benchmarks)."""
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = MqttSubscriber(broker.port, "cw/#").start()
    store = EventStore(tmp_path / "store")
    stored: dict[int, float] = {}
    store.add_listener(lambda seq: stored.setdefault(seq, time.time()))
    manager = manager_for(store, webhook(receiver.url), mqtt_sink(broker.port))
    try:
        wait_for(lambda: manager.view("site")["status"]["connected"], 10, interval=0.02,
                 what="the MQTT sink to connect")
        seqs = []
        for n in range(20):  # 20 alerts, 60 messages, at about 20 messages/s
            seqs += raise_alert(store, f"cam{n % 3}", updates=1, images=False)
            time.sleep(0.15)
        wait_for(lambda: len(receiver.messages()) >= len(seqs) and
                 len(subscriber.received) >= len(seqs), 20, interval=0.02, what="deliveries")
        assert [m["seq"] for m in receiver.messages()] == seqs
        assert [m["seq"] for _, _, m in subscriber.received] == seqs
        webhook_ms = sorted(1000 * (t - stored[m["seq"]]) for t, m, _, _ in receiver.accepted)
        mqtt_ms = sorted(1000 * (t - stored[m["seq"]]) for t, _, m in subscriber.received)
        report = {name: {"messages": len(ms), "p50_ms": round(ms[len(ms) // 2], 2),
                         "p95_ms": round(ms[int(len(ms) * 0.95)], 2), "max_ms": round(ms[-1], 2)}
                  for name, ms in (("webhook", webhook_ms), ("mqtt", mqtt_ms))}
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "sink-latency.json").write_text(json.dumps(report, indent=2))
        print(f"alert stored -> received: {report}")
        assert report["webhook"]["p50_ms"] < 1000 and report["mqtt"]["p50_ms"] < 1000
    finally:
        manager.stop()
        subscriber.stop()
        broker.stop()


def test_mqtts_with_a_password_delivers_and_a_wrong_password_is_shown(tmp_path):
    """TLS checked against the sink's ca_file (a CA made here), credentials from the URL."""
    tls = make_tls_files(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "broker", tls=tls, users={"cw": "s3cret pass"}).start()
    store = EventStore(tmp_path / "store")
    url = f"mqtts://cw:s3cret%20pass@localhost:{broker.port}"
    good = mqtt_sink(broker.port, id="good", url=url, ca_file=tls.ca)
    wrong = mqtt_sink(broker.port, id="wrong", ca_file=tls.ca,
                      url=f"mqtts://cw:nope@localhost:{broker.port}")
    untrusted = mqtt_sink(broker.port, id="untrusted", url=url)  # the system's CAs only
    manager = manager_for(store, good, wrong, untrusted)
    try:
        wait_for(lambda: manager.view("good")["status"]["connected"], 10, interval=0.02,
                 what="the TLS connection with a password")
        result = manager.test("good")
        assert result["delivered"] is True, result
        wait_for(lambda: "refused" in (manager.view("wrong")["status"]["last_error"] or ""),
                 10, interval=0.05, what="the broker to refuse the wrong password")
        wrong_status = manager.view("wrong")["status"]
        assert wrong_status["state"] == "failing" and wrong_status["connected"] is False
        assert "Not authorized" in wrong_status["last_error"]
        assert manager.test("wrong")["delivered"] is False
        wait_for(lambda: manager.view("untrusted")["status"]["state"] == "failing", 10,
                 interval=0.05, what="the untrusted certificate to be refused")
        assert "TLS certificate" in manager.view("untrusted")["status"]["last_error"]
        assert "nope" not in json.dumps(manager.views())  # passwords masked
        assert "s3cret" not in json.dumps(manager.views())
    finally:
        manager.stop()
        broker.stop()
