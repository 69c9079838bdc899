"""The event store's contract, kept by both stores: EventStore (SQLite, the embedded default)
and PostgresEventStore (the cluster mode, on a real PostgreSQL server with a fresh database
per test). Transitions stored with their messages, ids and seqs, resume by seq, filters and
paging, acknowledgement, alerts left open, images and clips, retention, sink cursors,
listeners, ids out of range. What only one store does is tested beside it
(test_event_store.py: WAL, schema migration; test_pg_store.py: restarts, several processes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from store_helpers import alert

from clipwatch.server.event_store import MAX_ID, EventStore, StoreError
from clipwatch.server.messages import AlertMessage
from clipwatch.server.schemas import Event


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Listeners of the PostgreSQL store hear of a message from another thread, a little
    later; SQLite's are told before record() returns."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path) -> Iterator[Callable[[], object]]:
    """Opens a store on the test's database and folder (again: the next run of a process)."""
    opened = []
    if request.param == "sqlite":
        def make():
            return EventStore(tmp_path / "store")
    else:
        url = request.getfixturevalue("postgres_url")
        from clipwatch.server.pg_store import PostgresEventStore

        def make():
            return PostgresEventStore(url, tmp_path / "store")

    def opening():
        opened.append(make())
        return opened[-1]

    yield opening
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    return open_store()


def test_a_whole_alert_is_stored_with_its_images_and_messages(store):
    seq1, event = store.record("start", alert(), {"snapshot": b"\xff\xd8jpeg", "heatmap": b"hm"})
    assert event["state"] == "open" and event["snapshot_url"].endswith("/snapshot.jpg")
    eid = event["id"]
    seq2, _ = store.record("update", alert(id=eid, lowest_regularity=0.1, frames=20))
    seq3, ended = store.record("end", alert(id=eid, lowest_regularity=0.1, ended_at=109.0))
    assert seq1 < seq2 < seq3
    assert ended["state"] == "closed" and ended["ended_at"] == 109.0
    assert ended["lowest_regularity"] == 0.1 and ended["frames"] == 5
    assert store.image_path(eid, "snapshot").read_bytes() == b"\xff\xd8jpeg"
    assert store.image_path(eid, "heatmap").read_bytes() == b"hm"
    assert store.get(eid)["snapshot"] == f"cam/{eid}-snapshot.jpg"
    assert [m["event"] for m in store.messages_since(0)] == ["start", "update", "end"]
    # as the websocket sends them: typed alert messages carrying the API's event
    assert all(AlertMessage.model_validate(m).type == "alert" for m in store.messages_since(0))
    assert Event.model_validate(ended).acknowledged is False
    assert set(ended) == set(Event.model_fields)
    assert [m["seq"] for m in store.messages_since(seq1)] == [seq2, seq3]
    assert store.messages_since(0, limit=1)[0]["seq"] == seq1
    assert store.last_seq() == seq3


def test_ids_and_seqs_increase_and_resume_by_seq(store):
    assert store.last_seq() == 0 and store.messages_since(0) == []
    stored = [store.record("start", alert(camera=f"c{i}", started=100.0 + i)) for i in range(5)]
    ids = [event["id"] for _, event in stored]
    seqs = [seq for seq, _ in stored]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert seqs == list(range(seqs[0], seqs[0] + 5))  # no gaps
    messages = store.sink_messages(seqs[1], limit=2)
    assert [m.seq for m in messages] == seqs[2:4] and [m.kind for m in messages] == ["start"] * 2
    assert messages[0].event["camera"] == "c2" and messages[0].at == 100.5 + 2
    assert store.messages_after(seqs[1]) == 3 and store.messages_after(seqs[-1]) == 0


def test_a_transition_for_an_alert_never_stored_is_refused_and_the_store_goes_on(store):
    with pytest.raises(StoreError, match="never stored"):
        store.record("update", alert())  # no id: its start was never stored
    assert "never stored" in store.check()  # until a write succeeds
    with pytest.raises(StoreError, match="does not exist"):
        store.record("end", alert(id=424242, ended_at=109.0))
    assert store.messages_since(0) == []  # both rolled back, messages too
    seq, event = store.record("start", alert())
    assert store.check() is None and store.last_seq() == seq


def test_filters_and_paging(store):
    for i in range(7):
        store.record("start", alert(camera="a" if i % 2 else "b", started=100.0 + i))
    items, total = store.list(limit=3)
    assert total == 7 and [e["started_at"] for e in items] == [106.0, 105.0, 104.0]
    items, total = store.list(limit=3, offset=6)
    assert total == 7 and [e["started_at"] for e in items] == [100.0]
    items, total = store.list(camera="a")
    assert total == 3 and {e["camera"] for e in items} == {"a"}
    items, total = store.list(since=102.0, until=105.0)
    assert [e["started_at"] for e in items] == [104.0, 103.0, 102.0]
    store.acknowledge(items[0]["id"], "checked on camera")
    assert store.list(acknowledged=True)[1] == 1
    assert store.list(acknowledged=False)[1] == 6
    assert store.list(state="closed")[1] == 0
    assert store.list(state="open", camera="b", acknowledged=False)[1] == 3  # 104 acked


def test_acknowledge_records_note_and_message(store):
    _, event = store.record("start", alert())
    seq, acked = store.acknowledge(event["id"], "a cyclist; not a threat")
    assert acked["acknowledged"] is True and acked["ack_note"] == "a cyclist; not a threat"
    assert acked["acknowledged_at"] > 0
    assert store.messages_since(seq - 1)[0]["event"] == "ack"
    assert store.acknowledge(9999, "x") is None
    assert store.last_seq() == seq  # nothing stored for an event that does not exist


def test_alerts_left_open_by_a_crash_are_closed_at_the_next_start(open_store):
    store = open_store()
    _, event = store.record("start", alert())
    store.close()  # the process dies here; the row stays open
    again = open_store()
    (seq, closed), = again.close_interrupted()
    assert closed["id"] == event["id"] and closed["state"] == "closed"
    assert closed["ended_at"] == closed["updated_at"]
    assert again.messages_since(seq - 1)[0]["event"] == "end"
    assert again.close_interrupted() == []


def test_a_camera_worker_closes_only_its_own_cameras_alerts(store):
    ids = {cam: store.record("start", alert(camera=cam))[1]["id"] for cam in ("a", "b", "c")}
    assert store.close_interrupted([]) == []
    closed = store.close_interrupted(["a", "c", "a"])
    assert sorted(event["id"] for _, event in closed) == [ids["a"], ids["c"]]
    assert store.get(ids["b"])["state"] == "open"
    assert store.close_interrupted("b")[0][1]["id"] == ids["b"]  # one camera, as a string
    assert store.close_interrupted() == []


def test_image_paths_never_leave_the_snapshot_folder(store, tmp_path):
    _, event = store.record("start", alert(), {"snapshot": b"x"})
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    # a row tampered to point outside the folder is refused, not served
    store._execute("UPDATE events SET snapshot = ? WHERE id = ?", ("../../secret.txt",
                                                                    event["id"]))
    assert store.image_path(event["id"], "snapshot") is None
    assert store.image_path(event["id"], "heatmap") is None  # never written
    assert store.image_path(9999, "snapshot") is None


def test_a_clip_is_attached_with_an_update_message(store):
    _, event = store.record("start", alert())
    relative, path = store.clip_file("cam", event["id"], ".webm")
    assert path == store.clips / relative and relative == f"cam/{event['id']}-clip.webm"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"webm")
    seq, attached = store.attach_clip(event["id"], relative)
    assert attached["clip_url"].endswith("/clip.webm")
    assert store.messages_since(seq - 1)[0]["event"] == "update"
    assert store.clip_path(event["id"]) == path.resolve()
    assert store.attach_clip(9999, relative) is None and store.clip_path(9999) is None


def test_retention_deletes_old_snapshots_then_the_oldest_beyond_the_size_cap(store):
    day = 86400.0
    now = 100 * day
    ids = []
    for age_days in (40, 31, 10, 5, 1):  # oldest first; each event has 2 files of 1000 bytes
        _, event = store.record("start", alert(started=now - age_days * day),
                                {"snapshot": b"s" * 1000, "heatmap": b"h" * 1000})
        ids.append(event["id"])
    assert store.prune(max_age_days=30, max_bytes=None, now=now) == 4  # the 40- and 31-day
    assert [store.image_path(i, "snapshot") is None for i in ids] == \
        [True, True, False, False, False]
    # 3 events, 6000 bytes left; a 4500-byte cap deletes the oldest of them, not the newest
    assert store.prune(max_age_days=30, max_bytes=4500, now=now) == 2
    assert [store.image_path(i, "snapshot") is None for i in ids] == \
        [True, True, True, False, False]
    events, total = store.list()
    assert total == 5  # the history stays; only the images go
    assert {e["id"]: e["snapshot_url"] for e in events}[ids[0]] is None
    assert store.prune(max_age_days=30, max_bytes=4500, now=now) == 0  # nothing more to do


def test_a_broken_snapshot_folder_costs_the_images_not_the_alert(store, caplog):
    store.snapshots.rmdir()
    store.snapshots.write_bytes(b"not a folder")  # every write below it: NotADirectoryError
    images = {"snapshot": b"\xff\xd8jpeg", "heatmap": b"hm"}
    _, event = store.record("start", alert(), images)  # stored, without its images
    assert event["snapshot_url"] is None and event["heatmap_url"] is None
    _, event = store.record("update", alert(id=event["id"], frames=9), images)
    assert store.images_not_stored == 4 and "snapshots" in store.check()
    assert caplog.text.count("cannot write snapshots") == 1  # said once, then counted
    store.snapshots.unlink()  # repaired: the next check sees it, before any alert
    assert store.check() is None and "4 image writes failed" in caplog.text
    _, event = store.record("end", alert(id=event["id"], ended_at=109.0), images)
    assert store.image_path(event["id"], "snapshot").read_bytes() == b"\xff\xd8jpeg"


def test_sink_cursors_survive_a_restart_and_can_be_forgotten(open_store):
    store = open_store()
    assert store.sink_cursor("hook") is None
    seqs = [store.record("start", alert(started=100.0 + i))[0] for i in range(3)]
    store.set_sink_cursor("hook", seqs[0])
    store.set_sink_cursor("hook", seqs[1])  # moves, one row per sink
    store.set_sink_cursor("mqtt", 0)
    store.close()
    again = open_store()
    assert again.sink_cursor("hook") == seqs[1] and again.sink_cursor("mqtt") == 0
    assert [m.seq for m in again.sink_messages(again.sink_cursor("hook"))] == [seqs[2]]
    again.forget_sink("hook")
    assert again.sink_cursor("hook") is None and again.sink_cursor("mqtt") == 0


def test_listeners_hear_of_every_stored_message_once(store):
    heard: list[int] = []
    store.add_listener(heard.append)
    first, event = store.record("start", alert())
    seqs = [store.record("update", alert(id=event["id"], frames=6 + i))[0] for i in range(3)]
    seqs.append(store.acknowledge(event["id"], "seen")[0])
    wait_until(lambda: heard and heard[-1] == seqs[-1])
    assert heard == [first, *seqs]  # in order, none twice, none missed


def test_ids_out_of_range_name_nothing_and_leave_no_transaction_open(store):
    for event_id in (MAX_ID + 1, 2**64, -(2**63) - 1, 0):
        assert store.get(event_id) is None and store.acknowledge(event_id, "x") is None
        assert store.image_path(event_id, "snapshot") is None
        assert store.clip_path(event_id) is None
    assert store.messages_since(2**70) == [] and store.messages_after(2**70) == 0
    _, event = store.record("start", alert())  # the store still writes
    assert store.acknowledge(event["id"], "seen") is not None
    assert len(store.messages_since(-(2**70))) == 2 and store.messages_after(-(2**70)) == 2
