"""What a camera worker keeps for the web processes (worker.py's WorkerHub): every web
process gets every frame and message of what it watches, and frames are encoded while some
web process's lease asks for them."""

from __future__ import annotations

import time

from clipwatch.cluster import worker
from clipwatch.cluster.worker import WorkerHub
from clipwatch.server.hub import LiveFrame


def frame(camera: str, index: int) -> LiveFrame:
    return LiveFrame(camera, index, 1000.0 + index, b"plain", b"overlay")


def test_two_web_processes_each_get_every_frame_and_message():
    hub = WorkerHub()
    hub.publish({"type": "score", "camera": "a", "frame": 1})
    hub.publish({"type": "alert", "seq": 1})  # alerts come from the database, not from here
    hub.publish_frame(frame("a", 1))
    sent = {"web-1": {}, "web-2": {}}
    for owner in sent:
        messages, frames, cursor = hub.take(0, {"a"}, sent[owner])
        assert [m["type"] for m in messages] == ["score"] and cursor == 1
        assert [f.frame for f in frames] == [1]
        sent[owner] = {"a": 1}
    assert hub.take(1, {"a"}, sent["web-1"])[:2] == ([], [])  # nothing new: nothing again
    hub.publish_frame(frame("a", 2))
    assert [f.frame for f in hub.take(1, {"a"}, sent["web-2"])[1]] == [2]
    assert hub.take(0, {"b"}, {})[1] == []  # frames only of the cameras asked for


def test_frames_are_wanted_while_some_web_process_leases_them(monkeypatch):
    hub = WorkerHub()
    assert hub.wants_frames("a") == (False, False)
    hub.watch("web-1", {"a": (True, False)})
    hub.watch("web-2", {"a": (False, True)})
    assert hub.wants_frames("a") == (True, True)  # one wants plain, the other the overlay
    hub.watch("web-2", {})  # web-2's viewers left
    assert hub.wants_frames("a") == (True, False)
    monkeypatch.setattr(worker, "WATCH_LEASE_S", 0.05)
    hub.watch("web-1", {"a": (True, False)})
    time.sleep(0.1)  # web-1 went away without a word: its lease lapses
    assert hub.wants_frames("a") == (False, False)
