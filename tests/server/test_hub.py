"""The websocket hub's fan-out, without a server: per-client bounded queues, subscription
filtering, and the sender's order. Deterministic: messages are published through the hub's
own thread-safe entry points with a loop stand-in that runs each call at once, and a
client's sender runs on the test's event loop against a recording socket until it waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

import pytest

from clipwatch.config import LiveConfig
from clipwatch.server.hub import Client, Hub, LiveFrame
from clipwatch.server.metrics import Metrics


class ImmediateLoop:
    """Stands in for the server's event loop: `call_soon_threadsafe` runs the call now."""

    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    def call_soon_threadsafe(self, fn, *args) -> None:
        fn(*args)


class RecordingSocket:
    """A websocket that records what the sender sends; `on_bytes` runs after each frame."""

    def __init__(self, on_bytes=None) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.on_bytes = on_bytes

    async def send_text(self, text: str) -> None:
        self.sent.append(("text", json.loads(text)))

    async def send_bytes(self, data: bytes) -> None:
        (length,) = struct.unpack(">I", data[:4])
        self.sent.append(("bytes", (json.loads(data[4:4 + length]), data[4 + length:])))
        if self.on_bytes is not None:
            self.on_bytes()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


def make_hub(**limits) -> Hub:
    hub = Hub(LiveConfig(**{"client_frames": 2, "client_scores": 16, "client_alerts": 16,
                            **limits}), Metrics())
    hub.attach(ImmediateLoop())
    return hub


def connect(hub: Hub, cameras: set[str] | None = None, video: bool = True,
            overlay: bool = True, subscribe: bool = True, socket=None) -> Client:
    client = hub.connect(socket or RecordingSocket())
    if subscribe:
        hub.subscribe(client, cameras, video, overlay)
    return client


def score(camera: str, frame: int) -> dict[str, Any]:
    return {"type": "score", "camera": camera, "frame": frame, "captured_at": 0.0,
            "regularity": 0.9, "error": 1.0, "threshold": 0.5, "alerting": False}


def alert(seq: int, camera: str = "a") -> dict[str, Any]:
    return {"type": "alert", "seq": seq, "event": "update", "camera": camera,
            "alert": {"id": 1, "camera": camera}}


def frame(camera: str, index: int, plain: bool = True, overlay: bool = True) -> LiveFrame:
    return LiveFrame(camera, index, 0.0, b"\xff\xd8plain" if plain else None,
                     b"\xff\xd8overlay" if overlay else None)


@pytest.fixture
def loop():
    """One event loop per test (a client's wake event belongs to the loop it first waits on)."""
    with asyncio.Runner() as runner:
        yield runner


def drain(hub: Hub, client: Client, loop: asyncio.Runner) -> bool:
    """Run the client's sender until it waits for more (or ends); True if it ended."""

    async def main() -> bool:
        sender = asyncio.create_task(hub.run_sender(client))
        for _ in range(5):  # the recording socket never suspends: one turn sends it all
            await asyncio.sleep(0)
        ended = sender.done()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        return ended

    return loop.run(main())


def dropped_frames(hub: Hub) -> float:
    return hub.metrics.registry.get_sample_value("clipwatch_websocket_frames_dropped_total")


# -- bounded queues --------------------------------------------------------------------------


def test_scores_keep_the_newest_n_per_client() -> None:
    hub = make_hub(client_scores=16)
    client = connect(hub)
    for i in range(20):
        hub.publish(score("a", i))
    assert [m["frame"] for m in client.scores] == list(range(4, 20))
    assert not client.reliable and not client.overflowed


def test_alerts_are_never_dropped_and_a_client_too_far_behind_is_closed(loop) -> None:
    hub = make_hub(client_alerts=16)
    behind = connect(hub)
    keeping_up = connect(hub)
    for seq in range(1, 17):
        hub.publish(alert(seq))
    assert not behind.overflowed  # 16 waiting is the limit, not over it
    assert drain(hub, keeping_up, loop) is False  # this one reads them
    hub.publish(alert(17))
    assert behind.overflowed and not keeping_up.overflowed
    assert [m["seq"] for m in behind.reliable] == list(range(1, 18))  # none dropped
    assert drain(hub, behind, loop) is True  # its sender closes the connection and ends
    assert behind.websocket.closed is not None and behind.websocket.closed[0] == 1013
    assert behind.websocket.sent == []  # it resumes from the store instead
    assert drain(hub, keeping_up, loop) is False
    assert [m["seq"] for _, m in keeping_up.websocket.sent] == list(range(1, 18))


def test_video_keeps_the_newest_two_frames_per_camera() -> None:
    hub = make_hub(client_frames=2)
    client = connect(hub)
    for i in range(5):
        hub.publish_frame(frame("a", i))
    hub.publish_frame(frame("b", 0))
    assert {cam: [f.frame for f in q] for cam, q in client.frames.items()} == \
        {"a": [3, 4], "b": [0]}
    assert dropped_frames(hub) == 3
    other = connect(hub)  # a new client starts with nothing queued
    hub.publish_frame(frame("a", 5))
    assert [f.frame for f in other.frames["a"]] == [5]
    assert [f.frame for f in client.frames["a"]] == [4, 5]
    assert dropped_frames(hub) == 4


# -- subscriptions ---------------------------------------------------------------------------


def test_scores_and_frames_go_only_where_subscribed() -> None:
    hub = make_hub()
    only_a = connect(hub, cameras={"a"})
    everything = connect(hub)
    no_video = connect(hub, video=False)
    not_subscribed = connect(hub, subscribe=False)
    for camera in ("a", "b"):
        hub.publish(score(camera, 1))
        hub.publish_frame(frame(camera, 1))

    def got(client: Client) -> tuple[list[str], list[str]]:
        return ([m["camera"] for m in client.scores],
                sorted(cam for cam, q in client.frames.items() if q))

    assert got(only_a) == (["a"], ["a"])
    assert got(everything) == (["a", "b"], ["a", "b"])
    assert got(no_video) == (["a", "b"], [])
    assert got(not_subscribed) == ([], [])


def test_alerts_and_status_reach_every_client_whatever_it_subscribed() -> None:
    hub = make_hub()
    clients = [connect(hub, cameras={"b"}), connect(hub, video=False),
               connect(hub, subscribe=False)]
    hub.publish(alert(1, camera="a"))
    hub.publish({"type": "status", "camera": "a", "state": "lost", "reason": "x", "since": 0})
    for client in clients:
        assert [m["type"] for m in client.reliable] == ["alert", "status"]


def test_subscribing_again_drops_frames_of_the_old_subscription() -> None:
    hub = make_hub()
    client = connect(hub)
    hub.publish_frame(frame("a", 1))
    hub.subscribe(client, {"b"}, True, False)
    assert not any(client.frames.values())
    hub.publish_frame(frame("a", 2))
    hub.publish_frame(frame("b", 2))
    assert [cam for cam, q in client.frames.items() if q] == ["b"]


def test_the_pipeline_encodes_only_the_variants_someone_watches() -> None:
    hub = make_hub()
    assert hub.wants_frames("a") == (False, False)
    overlay_a = connect(hub, cameras={"a"}, overlay=True)
    assert hub.wants_frames("a") == (False, True) and hub.wants_frames("b") == (False, False)
    plain_all = connect(hub, overlay=False)
    assert hub.wants_frames("a") == (True, True) and hub.wants_frames("b") == (True, False)
    connect(hub, video=False)  # scores only: wants no JPEG
    assert hub.wants_frames("b") == (True, False)
    hub.disconnect(plain_all)
    assert hub.wants_frames("b") == (False, False)
    hub.disconnect(overlay_a)
    assert hub.wants_frames("a") == (False, False)


def test_publishing_without_a_running_loop_is_a_no_op() -> None:
    hub = Hub(LiveConfig(), Metrics())  # never attached: the server is not up
    client = hub.connect(RecordingSocket())
    hub.subscribe(client, None, True, True)
    hub.publish(alert(1))
    hub.publish_frame(frame("a", 1))
    assert not client.reliable and not client.frames
    loop = ImmediateLoop()
    hub.attach(loop)
    loop.closed = True  # the server is stopping
    hub.publish(alert(2))
    assert not client.reliable


# -- the sender ------------------------------------------------------------------------------


def test_the_sender_sends_alerts_then_scores_then_video(loop) -> None:
    hub = make_hub()
    client = connect(hub)
    hub.publish(score("a", 1))
    hub.publish_frame(frame("a", 1))
    hub.publish(alert(1))
    assert drain(hub, client, loop) is False
    kinds = [kind if kind == "bytes" else message["type"]
             for kind, message in client.websocket.sent]
    assert kinds == ["alert", "score", "bytes"]
    header, jpeg = client.websocket.sent[-1][1]
    assert (header["camera"], header["frame"], header["overlay"]) == ("a", 1, True)
    assert jpeg == b"\xff\xd8overlay"
    assert hub.metrics.registry.get_sample_value(
        "clipwatch_frame_to_viewer_seconds_count", {"camera": "a"}) == 1
    assert not client.scores and not client.reliable and not any(client.frames.values())


def test_an_alert_that_arrives_during_video_goes_before_more_video(loop) -> None:
    hub = make_hub()
    published = []

    def alert_once() -> None:  # the pipeline raises an alert while video is being sent
        if not published:
            published.append(1)
            hub.publish(alert(1))

    client = connect(hub, socket=RecordingSocket(on_bytes=alert_once))
    for camera in ("a", "b"):
        for i in (1, 2):
            hub.publish_frame(frame(camera, i))
    assert drain(hub, client, loop) is False
    sent = [(m["camera"], m["frame"]) if kind == "bytes" else m["type"]
            for kind, m in ((k, v[0] if k == "bytes" else v) for k, v in client.websocket.sent)]
    # a camera's queued frames go together, then the alert, then the next camera's video
    assert sent == [("a", 1), ("a", 2), "alert", ("b", 1), ("b", 2)]


@pytest.mark.parametrize(("plain", "overlay", "wanted", "expected"), [
    (True, True, True, (True, b"\xff\xd8overlay")),
    (True, True, False, (False, b"\xff\xd8plain")),
    (True, False, True, (False, b"\xff\xd8plain")),  # no heatmap yet: the plain frame
    (False, False, True, None),
])
def test_a_frames_packet_carries_the_variant_asked_for(plain, overlay, wanted, expected) -> None:
    packet = frame("a", 7, plain=plain, overlay=overlay).packet(wanted)
    if expected is None:
        assert packet is None
        return
    (length,) = struct.unpack(">I", packet[:4])
    header = json.loads(packet[4:4 + length])
    assert header["camera"] == "a" and header["frame"] == 7
    assert (header["overlay"], packet[4 + length:]) == expected
