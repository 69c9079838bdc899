"""EventStore (SQLite) only: WAL mode, an events.db from an earlier version, partial clips
and the factory's default. What both stores promise is in test_store_contract.py."""

import sqlite3

from store_helpers import alert

from clipwatch.config import Config
from clipwatch.server.event_store import EventStore, open_event_store


def test_the_database_is_in_wal_mode(tmp_path):
    store = EventStore(tmp_path)
    store.record("start", alert())
    # WAL mode: readers in other processes do not block the writer
    mode = sqlite3.connect(tmp_path / "events.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_an_events_db_from_an_earlier_version_gains_the_new_columns(tmp_path):
    old = sqlite3.connect(tmp_path / "events.db")
    old.executescript("""
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'closed')), started_at REAL NOT NULL,
            ended_at REAL, updated_at REAL NOT NULL, start_frame INTEGER NOT NULL,
            lowest_regularity REAL NOT NULL, worst_frame INTEGER NOT NULL,
            worst_at REAL NOT NULL, threshold REAL NOT NULL, frames INTEGER NOT NULL,
            acknowledged INTEGER NOT NULL DEFAULT 0, ack_note TEXT, acknowledged_at REAL,
            snapshot TEXT, heatmap TEXT);
        INSERT INTO events (camera, state, started_at, updated_at, start_frame,
            lowest_regularity, worst_frame, worst_at, threshold, frames)
            VALUES ('cam', 'closed', 50.0, 51.0, 1, 0.2, 2, 50.5, 0.5, 3);
    """)
    old.close()
    store = EventStore(tmp_path)
    events, total = store.list()
    assert total == 1 and events[0]["zone"] is None and events[0]["clip_url"] is None
    _, event = store.record("start", alert(zone="door", model="m.onnx"))
    assert event["zone"] == "door" and event["model"] == "m.onnx"


def test_partial_clips_of_a_crashed_run_are_removed_at_open(tmp_path):
    partial = tmp_path / "clips" / "cam" / "7-clip.webm.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    EventStore(tmp_path).close()
    assert not partial.exists()


def test_without_a_cluster_the_factory_opens_sqlite_in_the_storage_folder(tmp_path):
    config = Config()
    config.storage.dir = tmp_path
    store = open_event_store(config)
    assert isinstance(store, EventStore) and (tmp_path / "events.db").is_file()
    store.close()
