"""EventStore: alerts in SQLite (WAL) with their snapshot and heatmap JPEGs on disk.

Every alert transition (start, update, end, acknowledge) is stored before it is broadcast,
and gets a sequence number in the `messages` table: a viewer that reconnects asks for the
messages after the last sequence number it saw, so it never misses an alert. A row and its
message are written in one transaction; JPEGs are written (atomically, by rename) before the
row that names them is committed, so a crash leaves no row pointing at half a file.

One connection shared by the pipeline thread and the API's worker threads, behind a lock:
SQLite serialises writers anyway, and the event rate is low.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from clipwatch.errors import ClipwatchError
from clipwatch.server.alerts import Alert
from clipwatch.server.messages import alert_message
from clipwatch.server.schemas import Event

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    started_at REAL NOT NULL,
    ended_at REAL,
    updated_at REAL NOT NULL,
    start_frame INTEGER NOT NULL,
    lowest_regularity REAL NOT NULL,
    worst_frame INTEGER NOT NULL,
    worst_at REAL NOT NULL,
    threshold REAL NOT NULL,
    frames INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    ack_note TEXT,
    acknowledged_at REAL,
    snapshot TEXT,
    heatmap TEXT
);
CREATE INDEX IF NOT EXISTS events_camera_started ON events (camera, started_at);
CREATE INDEX IF NOT EXISTS events_started ON events (started_at);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL REFERENCES events (id),
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    payload TEXT NOT NULL
);
"""

_EVENT_COLUMNS = ("id", "camera", "state", "started_at", "ended_at", "updated_at", "start_frame",
                  "lowest_regularity", "worst_frame", "worst_at", "threshold", "frames",
                  "acknowledged", "ack_note", "acknowledged_at", "snapshot", "heatmap")


class StoreError(ClipwatchError):
    """The event store cannot be opened or written."""


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    """An event as the API and the websocket send it (an `Event`; file names become URLs)."""
    fields = {k: row[k] for k in _EVENT_COLUMNS if k not in ("snapshot", "heatmap")}
    return Event(
        **fields,
        snapshot_url=f"/api/events/{row['id']}/snapshot.jpg" if row["snapshot"] else None,
        heatmap_url=f"/api/events/{row['id']}/heatmap.jpg" if row["heatmap"] else None,
    ).model_dump()


class EventStore:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.snapshots = self.folder / "snapshots"
        try:
            self.snapshots.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.folder / "events.db", check_same_thread=False,
                                       isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a process crash (only an
            # OS crash or power cut can lose the last ones), at a fraction of FULL's fsyncs.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the event store in {self.folder}: {exc}") from None
        self._lock = threading.Lock()
        self.failing_since: float | None = None  # set while writes fail (disk full, ...)
        self.last_error: str | None = None

    def _failed(self, message: str) -> StoreError:
        if self.failing_since is None:
            self.failing_since = time.time()
        self.last_error = message
        return StoreError(message)

    def _succeeded(self) -> None:
        self.failing_since, self.last_error = None, None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing -------------------------------------------------------------------------

    def record(self, kind: str, alert: Alert,
               images: dict[str, bytes] | None = None) -> tuple[int, dict[str, Any]]:
        """Store one alert transition (start creates the event); returns (seq, event).

        `images` maps 'snapshot' and 'heatmap' to JPEG bytes for the worst frame, when it
        changed. The caller broadcasts only after this returns.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                event_id = alert.id if kind != "start" else self._insert(alert)
                if kind != "start":
                    self._update(event_id, alert)
                for name, data in (images or {}).items():
                    file = self._write_image(alert.camera, event_id, name, data)
                    if file is not None:
                        self._db.execute(f"UPDATE events SET {name} = ? WHERE id = ?",
                                         (file, event_id))
                seq, event = self._log(event_id, kind, alert.updated_at)
                self._db.execute("COMMIT")
                self._succeeded()
                return seq, event
            except sqlite3.Error as exc:
                self._rollback()
                raise self._failed(f"cannot store alert on {alert.camera}: {exc}") from None

    def _insert(self, alert: Alert) -> int:
        cursor = self._db.execute(
            "INSERT INTO events (camera, state, started_at, ended_at, updated_at, start_frame, "
            "lowest_regularity, worst_frame, worst_at, threshold, frames) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.camera, "open" if alert.ended_at is None else "closed", alert.started_at,
             alert.ended_at, alert.updated_at, alert.start_frame, alert.lowest_regularity,
             alert.worst_frame, alert.worst_at, alert.threshold, alert.frames))
        return int(cursor.lastrowid)

    def _update(self, event_id: int | None, alert: Alert) -> None:
        if event_id is None:
            raise sqlite3.IntegrityError("an alert update arrived for an alert never stored")
        self._db.execute(
            "UPDATE events SET state = ?, ended_at = ?, updated_at = ?, lowest_regularity = ?, "
            "worst_frame = ?, worst_at = ?, threshold = ?, frames = ? WHERE id = ?",
            ("open" if alert.ended_at is None else "closed", alert.ended_at, alert.updated_at,
             alert.lowest_regularity, alert.worst_frame, alert.worst_at, alert.threshold,
             alert.frames, event_id))

    def _write_image(self, camera: str, event_id: int, name: str, data: bytes) -> str | None:
        """Write <camera>/<id>-<name>.jpg atomically; a failure costs the image, not the alert."""
        relative = f"{camera}/{event_id}-{name}.jpg"
        target = self.snapshots / relative
        tmp = target.with_suffix(".tmp")
        try:
            target.parent.mkdir(exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            log.error("cannot write %s: %s (the alert is stored without it)", target,
                      exc.strerror or exc)
            tmp.unlink(missing_ok=True)
            return None
        return relative

    def _log(self, event_id: int, kind: str, at: float) -> tuple[int, dict[str, Any]]:
        event = event_json(self._row(event_id))
        cursor = self._db.execute(
            "INSERT INTO messages (event_id, kind, at, payload) VALUES (?, ?, ?, ?)",
            (event_id, kind, at, json.dumps(event)))
        return int(cursor.lastrowid), event

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction was open
            self._db.execute("ROLLBACK")

    def acknowledge(self, event_id: int, note: str) -> tuple[int, dict[str, Any]] | None:
        """Mark an event acknowledged with a note; None if there is no such event."""
        now = time.time()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "UPDATE events SET acknowledged = 1, ack_note = ?, acknowledged_at = ? "
                    "WHERE id = ?", (note, now, event_id))
                if cursor.rowcount == 0:
                    self._rollback()
                    return None
                result = self._log(event_id, "ack", now)
                self._db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                self._rollback()
                raise self._failed(f"cannot acknowledge event {event_id}: {exc}") from None

    def close_interrupted(self) -> list[tuple[int, dict[str, Any]]]:
        """At start: close the alerts a previous run left open (it stopped without ending
        them), at the last time they were updated. Returns the stored end messages."""
        with self._lock:
            ids = [r["id"] for r in self._db.execute("SELECT id FROM events WHERE state='open'")]
            results = []
            for event_id in ids:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("UPDATE events SET state = 'closed', ended_at = updated_at "
                                 "WHERE id = ?", (event_id,))
                results.append(self._log(event_id, "end", time.time()))
                self._db.execute("COMMIT")
            return results

    # -- retention -----------------------------------------------------------------------

    def prune(self, max_age_days: float | None, max_bytes: int | None,
              now: float | None = None) -> int:
        """Delete snapshot and heatmap files of events older than `max_age_days`, then of the
        oldest events until all files fit in `max_bytes`. The events stay in the history
        (without images). Returns how many files were deleted."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, snapshot, heatmap, started_at FROM events WHERE snapshot IS NOT NULL "
                "OR heatmap IS NOT NULL ORDER BY started_at, id").fetchall()
        sizes = {}
        for row in rows:
            sizes[row["id"]] = sum(self._file_size(row[n]) for n in ("snapshot", "heatmap"))
        total, cutoff = sum(sizes.values()), None
        if max_age_days is not None:
            cutoff = now - max_age_days * 86400
        doomed = []
        for row in rows:  # oldest first
            too_old = cutoff is not None and row["started_at"] < cutoff
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                continue
            doomed.append(row)
            total -= sizes[row["id"]]
        deleted = 0
        for row in doomed:
            for name in ("snapshot", "heatmap"):
                if row[name]:
                    (self.snapshots / row[name]).unlink(missing_ok=True)
                    deleted += 1
            with self._lock:
                self._db.execute("UPDATE events SET snapshot = NULL, heatmap = NULL WHERE id = ?",
                                 (row["id"],))
        return deleted

    def _file_size(self, name: str | None) -> int:
        if not name:
            return 0
        try:
            return (self.snapshots / name).stat().st_size
        except OSError:
            return 0

    # -- reading -------------------------------------------------------------------------

    def _find(self, event_id: int) -> dict[str, Any] | None:
        """The raw row (with file names), or None; the caller holds the lock."""
        row = self._db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return dict(row) if row else None

    def _row(self, event_id: int) -> dict[str, Any]:
        """The row inside a write, where a missing one is an error that rolls it back."""
        row = self._find(event_id)
        if row is None:
            raise sqlite3.IntegrityError(f"event {event_id} does not exist")
        return row

    def get(self, event_id: int) -> dict[str, Any] | None:
        """The raw row (with file names), or None."""
        with self._lock:
            return self._find(event_id)

    def list(self, camera: str | None = None, since: float | None = None,
             until: float | None = None, acknowledged: bool | None = None,
             state: str | None = None, limit: int = 50,
             offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events newest first with the filters given; returns (page, total matching)."""
        clauses, params = [], []
        for clause, value in (("camera = ?", camera), ("started_at >= ?", since),
                              ("started_at < ?", until), ("state = ?", state),
                              ("acknowledged = ?", None if acknowledged is None
                               else int(acknowledged))):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM events {where}", params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM events {where} ORDER BY started_at DESC, id DESC "
                "LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return [event_json(dict(r)) for r in rows], int(total)

    def messages_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Alert messages after `seq`, oldest first, as the websocket sends them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit)).fetchall()
        return [alert_message(r["seq"], r["kind"], json.loads(r["payload"])) for r in rows]

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM messages").fetchone()
        return int(row[0] or 0)

    def image_path(self, event_id: int, name: str) -> Path | None:
        """The file of an event's snapshot or heatmap, only ever inside the snapshot folder."""
        row = self.get(event_id)
        if row is None or not row.get(name):
            return None
        path = (self.snapshots / row[name]).resolve()
        if not path.is_relative_to(self.snapshots.resolve()) or not path.is_file():
            return None
        return path


__all__ = ["EventStore", "StoreError", "alert_message", "event_json"]  # alert_message: messages.py
