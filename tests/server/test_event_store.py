"""EventStore: transitions stored with their messages, filters, paging, ack, resume, files."""

import sqlite3

from clipwatch.server.alerts import Alert
from clipwatch.server.event_store import EventStore
from clipwatch.server.messages import AlertMessage
from clipwatch.server.schemas import Event


def alert(camera="cam", started=100.0, **changes):
    fields = dict(camera=camera, started_at=started, start_frame=10, lowest_regularity=0.3,
                  worst_frame=12, worst_at=started + 0.2, threshold=0.5, frames=5,
                  updated_at=started + 0.5)
    fields.update(changes)
    return Alert(**fields)


def test_a_whole_alert_is_stored_with_its_images_and_messages(tmp_path):
    store = EventStore(tmp_path)
    seq1, event = store.record("start", alert(), {"snapshot": b"\xff\xd8jpeg", "heatmap": b"hm"})
    assert event["state"] == "open" and event["snapshot_url"].endswith("/snapshot.jpg")
    eid = event["id"]
    seq2, _ = store.record("update", alert(id=eid, lowest_regularity=0.1, frames=20))
    seq3, ended = store.record("end", alert(id=eid, lowest_regularity=0.1, ended_at=109.0))
    assert seq1 < seq2 < seq3
    assert ended["state"] == "closed" and ended["ended_at"] == 109.0
    assert ended["lowest_regularity"] == 0.1
    assert store.image_path(eid, "snapshot").read_bytes() == b"\xff\xd8jpeg"
    assert [m["event"] for m in store.messages_since(0)] == ["start", "update", "end"]
    # as the websocket sends them: typed alert messages carrying the API's event
    assert all(AlertMessage.model_validate(m).type == "alert" for m in store.messages_since(0))
    assert Event.model_validate(ended).acknowledged is False
    assert set(ended) == set(Event.model_fields)
    assert [m["seq"] for m in store.messages_since(seq1)] == [seq2, seq3]
    assert store.last_seq() == seq3
    # WAL mode: readers in other processes do not block the writer
    mode = sqlite3.connect(tmp_path / "events.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_filters_and_paging(tmp_path):
    store = EventStore(tmp_path)
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


def test_acknowledge_records_note_and_message(tmp_path):
    store = EventStore(tmp_path)
    _, event = store.record("start", alert())
    seq, acked = store.acknowledge(event["id"], "a cyclist; not a threat")
    assert acked["acknowledged"] is True and acked["ack_note"] == "a cyclist; not a threat"
    assert store.messages_since(seq - 1)[0]["event"] == "ack"
    assert store.acknowledge(9999, "x") is None


def test_alerts_left_open_by_a_crash_are_closed_at_the_next_start(tmp_path):
    store = EventStore(tmp_path)
    _, event = store.record("start", alert())
    store.close()  # the process dies here; the row stays open
    again = EventStore(tmp_path)
    (seq, closed), = again.close_interrupted()
    assert closed["id"] == event["id"] and closed["state"] == "closed"
    assert closed["ended_at"] == closed["updated_at"]
    assert again.close_interrupted() == []


def test_image_paths_never_leave_the_snapshot_folder(tmp_path):
    store = EventStore(tmp_path / "store")
    _, event = store.record("start", alert(), {"snapshot": b"x"})
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    # a row tampered to point outside the folder is refused, not served
    store._db.execute("UPDATE events SET snapshot = ? WHERE id = ?", ("../../secret.txt",
                                                                       event["id"]))
    assert store.image_path(event["id"], "snapshot") is None
    assert store.image_path(event["id"], "heatmap") is None  # never written


def test_retention_deletes_old_snapshots_then_the_oldest_beyond_the_size_cap(tmp_path):
    store = EventStore(tmp_path)
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


def test_a_broken_snapshot_folder_costs_the_images_not_the_alert(tmp_path, caplog):
    store = EventStore(tmp_path)
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


def test_ids_sqlite_cannot_hold_name_nothing_and_leave_no_transaction_open(tmp_path):
    store = EventStore(tmp_path)
    for event_id in (2**63, 2**64, -(2**63) - 1):
        assert store.get(event_id) is None and store.acknowledge(event_id, "x") is None
        assert store.image_path(event_id, "snapshot") is None
    assert store.messages_since(2**70) == []
    _, event = store.record("start", alert())  # the store still writes
    assert store.acknowledge(event["id"], "seen") is not None
