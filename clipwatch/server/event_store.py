"""EventStore: alerts in SQLite (WAL) with their snapshot and heatmap JPEGs on disk, and
the names of their clips (written under `clips/` by clips.py, attached here once complete).

Every alert transition (start, update, end, acknowledge) is stored before it is broadcast,
and gets a sequence number in the `messages` table: a viewer that reconnects asks for the
messages after the last sequence number it saw, so it never misses an alert; each alert
sink keeps its place in the same messages (`sink_cursors`: its durable outbox, see
sinks/worker.py) and is woken by a listener when one is stored. A row and its
message are written in one transaction; JPEGs are written (atomically, by rename) before the
row that names them is committed, so a crash leaves no row pointing at half a file.

The SQL is shared with the cluster mode's PostgreSQL store (pg_store.py): `SqlEventStore`
holds it, written with `?` placeholders, and a subclass supplies the dialect (how to connect,
begin and commit, which errors mean "unavailable", how a new row's id and a message's seq are
made, who hears of a new message). `EventStore` is the embedded default: SQLite, in the same
folder as the files. `open_event_store` picks one from the config.

One connection shared by the pipeline thread and the API's worker threads, behind a lock:
SQLite serialises writers anyway, and the event rate is low.

Every failure of the disk or the database (any OSError or sqlite3.Error, from a write or a
read) leaves the store as a `StoreError`, with any open transaction rolled back: the caller
(a camera's AlertOutbox, a route) keeps what it tried and retries later. The images alone
are best effort: when the snapshot folder cannot be written (gone, replaced by a file, full)
an alert is stored and sent without them, the first failure is logged once and the images
missed are counted until the folder takes a file again (`check`, as /readyz asks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from clipwatch.errors import ClipwatchError
from clipwatch.server.alerts import Alert
from clipwatch.server.messages import alert_message
from clipwatch.server.schemas import Event

if TYPE_CHECKING:
    from clipwatch.config import Config
    from clipwatch.server.pg_store import PostgresEventStore

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
    heatmap TEXT,
    zone TEXT,
    model TEXT,
    clip TEXT
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
CREATE TABLE IF NOT EXISTS sink_cursors (
    sink TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""

_EVENT_COLUMNS = ("id", "camera", "state", "started_at", "ended_at", "updated_at", "start_frame",
                  "lowest_regularity", "worst_frame", "worst_at", "threshold", "frames",
                  "acknowledged", "ack_note", "acknowledged_at", "snapshot", "heatmap", "zone",
                  "model", "clip")
# Columns added after the first release: an older events.db gets them at open (ALTER TABLE).
_ADDED_COLUMNS = {"zone": "TEXT", "model": "TEXT", "clip": "TEXT"}


MAX_ID = 2**63 - 1  # SQLite's (and a BIGINT's) largest: a larger id or seq names nothing
PROBE = ".write-probe"  # written and removed in the snapshot folder to see that it works
PARTIAL_CLIP = ".part"  # a clip being recorded (clips.py); renamed once complete


class StoredMessage(NamedTuple):
    """One row of `messages`, for the alert sinks."""

    seq: int
    kind: str  # start, update, end, ack
    at: float  # the transition's time (epoch seconds)
    event: dict[str, Any]  # as `event_json` made it when the message was stored


class StoreError(ClipwatchError):
    """The event store cannot be opened, written or read (disk full, folder gone)."""


class Refused(Exception):
    """A write the store refuses whatever the database (an update for an alert never
    stored): rolled back and reported as a StoreError, like a database failure."""


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    """An event as the API and the websocket send it (an `Event`; file names become URLs)."""
    fields = {k: row[k] for k in _EVENT_COLUMNS if k not in ("snapshot", "heatmap", "clip")}
    return Event(
        **fields,
        snapshot_url=f"/api/events/{row['id']}/snapshot.jpg" if row["snapshot"] else None,
        heatmap_url=f"/api/events/{row['id']}/heatmap.jpg" if row["heatmap"] else None,
        clip_url=f"/api/events/{row['id']}/clip{Path(row['clip']).suffix}" if row["clip"]
        else None,
    ).model_dump()


class SqlEventStore:
    """The event store's logic over any SQL database; a subclass supplies the dialect (the
    hooks below `-- the dialect`). Rows are read by column name, never by position."""

    # The exceptions that mean "the store cannot do this now": rolled back, a StoreError.
    errors: tuple[type[BaseException], ...] = (OSError, Refused)

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.snapshots = self.folder / "snapshots"
        self.clips = self.folder / "clips"  # <camera>/<id>-clip.webm, written by clips.py
        self._lock = threading.Lock()
        self.failing_since: float | None = None  # set while writes fail (disk full, ...)
        self.last_error: str | None = None
        # The snapshot folder, apart: alerts are stored without their images meanwhile.
        self.images_failing_since: float | None = None
        self.image_error: str | None = None
        self.images_not_stored = 0  # image writes refused since the service started
        self._images_missed = 0  # in the current failing streak (for the recovery line)
        # Told each new message's seq once it is committed (alert sinks wake on it).
        self._listeners: list[Callable[[int], None]] = []

    # -- the dialect ---------------------------------------------------------------------

    def _execute(self, sql: str, params: tuple | list = ()) -> Any:
        """Run one statement (`?` placeholders) on the connection; returns its cursor, whose
        rows can be read by column name."""
        raise NotImplementedError

    def _insert_id(self, sql: str, params: tuple | list) -> int:
        """Run an INSERT into `events`; returns the new row's id."""
        raise NotImplementedError

    def _insert_message(self, event_id: int, kind: str, at: float, payload: str) -> int:
        """Insert a row of `messages` inside the current transaction; returns its seq."""
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        """End any open transaction; never raises (no transaction may be open)."""
        raise NotImplementedError

    def _committed(self, seq: int) -> None:
        """Message `seq` was committed by this store: see that the listeners hear of it."""
        raise NotImplementedError

    def _database_problem(self) -> str | None:
        """Why the database cannot be reached now, or None (for `check`)."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _reason(exc: BaseException) -> str:
        return _reason(exc)

    # -- failures ------------------------------------------------------------------------

    def _failed(self, message: str) -> StoreError:
        if self.failing_since is None:
            self.failing_since = time.time()
        self.last_error = message
        return StoreError(message)

    def _succeeded(self) -> None:
        self.failing_since, self.last_error = None, None

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """BEGIN ... COMMIT, the caller holding the lock. Any failure rolls back (an open
        transaction would refuse every later write); a disk or database failure leaves as a
        StoreError saying `what` failed and why."""
        try:
            self._begin()
            yield
            self._commit()
        except self.errors as exc:
            self._rollback()
            raise self._failed(f"{what}: {self._reason(exc)}") from None
        except BaseException:
            self._rollback()
            raise
        self._succeeded()

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """A read under the lock; a database that cannot be read is a StoreError (503)."""
        with self._lock:
            try:
                yield
            except self.errors as exc:
                raise StoreError(f"{what}: {self._reason(exc)}") from None

    # -- writing -------------------------------------------------------------------------

    def record(self, kind: str, alert: Alert,
               images: dict[str, bytes] | None = None) -> tuple[int, dict[str, Any]]:
        """Store one alert transition (start creates the event); returns (seq, event).

        `images` maps 'snapshot' and 'heatmap' to JPEG bytes for the worst frame, when it
        changed. The caller broadcasts only after this returns.
        """
        with self._lock, self._transaction(f"cannot store alert on {alert.camera}"):
            event_id = alert.id if kind != "start" else self._insert(alert)
            if kind != "start":
                self._update(event_id, alert)
            for name, data in (images or {}).items():
                file = self._write_image(alert.camera, event_id, name, data)
                if file is not None:
                    self._execute(f"UPDATE events SET {name} = ? WHERE id = ?",
                                  (file, event_id))
            seq, event = self._log(event_id, kind, alert.updated_at)
        self._committed(seq)
        return seq, event

    def _insert(self, alert: Alert) -> int:
        return self._insert_id(
            "INSERT INTO events (camera, state, started_at, ended_at, updated_at, start_frame, "
            "lowest_regularity, worst_frame, worst_at, threshold, frames, zone, model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.camera, "open" if alert.ended_at is None else "closed", alert.started_at,
             alert.ended_at, alert.updated_at, alert.start_frame, alert.lowest_regularity,
             alert.worst_frame, alert.worst_at, alert.threshold, alert.frames, alert.zone,
             alert.model))

    def _update(self, event_id: int | None, alert: Alert) -> None:
        if event_id is None:
            raise Refused("an alert update arrived for an alert never stored")
        self._execute(
            "UPDATE events SET state = ?, ended_at = ?, updated_at = ?, lowest_regularity = ?, "
            "worst_frame = ?, worst_at = ?, threshold = ?, frames = ? WHERE id = ?",
            ("open" if alert.ended_at is None else "closed", alert.ended_at, alert.updated_at,
             alert.lowest_regularity, alert.worst_frame, alert.worst_at, alert.threshold,
             alert.frames, event_id))

    def _write_image(self, camera: str, event_id: int, name: str, data: bytes) -> str | None:
        """Write <camera>/<id>-<name>.jpg atomically; a failure costs the image, not the alert.
        Never raises: the caller stores the alert without this image."""
        relative = f"{camera}/{event_id}-{name}.jpg"
        target = self.snapshots / relative
        tmp = target.with_suffix(".tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # the folder, if it was deleted
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):  # the folder may be a file, or gone
                tmp.unlink(missing_ok=True)
            self.images_not_stored += 1
            self._images_missed += 1
            self._images_failed(exc)
            return None
        self._images_work()
        return relative

    def _images_failed(self, exc: OSError) -> None:
        """The first failure of a streak is logged, once; the rest are counted."""
        if self.images_failing_since is not None:
            return
        self.images_failing_since = time.time()
        self.image_error = f"cannot write snapshots in {self.snapshots}: {_reason(exc)}"
        log.error("%s; alerts are stored and sent without their snapshot and heatmap until "
                  "it works again (counted in /readyz: images_not_stored)", self.image_error)

    def _images_work(self) -> None:
        if self.images_failing_since is None:
            return
        log.warning("the snapshot folder %s works again; %d image writes failed in the "
                    "%.0f s it was broken", self.snapshots, self._images_missed,
                    time.time() - self.images_failing_since)
        self.images_failing_since, self.image_error, self._images_missed = None, None, 0

    def check(self) -> str | None:
        """Why the store cannot take alerts with their images now, or None (for /readyz).

        A database write that failed stays the answer until a write succeeds (the outboxes
        retry theirs). The snapshot folder is tried with a small file whenever it looks
        wrong or failed last time, so readiness comes back once it is repaired, even before
        the next alert."""
        problem = self._database_problem()
        if problem is not None:
            return problem
        with self._lock:
            if self.last_error is not None:
                return self.last_error
            if not os.access(self.folder, os.W_OK):
                return f"the event store's folder {self.folder} is not writable"
            if self.images_failing_since is None and self.snapshots.is_dir() and \
                    os.access(self.snapshots, os.W_OK):
                return None
            probe = self.snapshots / PROBE
            try:
                self.snapshots.mkdir(parents=True, exist_ok=True)
                probe.write_bytes(b"ok")
                probe.unlink()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    probe.unlink(missing_ok=True)
                self._images_failed(exc)
                return self.image_error
            self._images_work()
            return None

    def _log(self, event_id: int, kind: str, at: float) -> tuple[int, dict[str, Any]]:
        event = event_json(self._row(event_id))
        return self._insert_message(event_id, kind, at, json.dumps(event)), event

    def acknowledge(self, event_id: int, note: str) -> tuple[int, dict[str, Any]] | None:
        """Mark an event acknowledged with a note; None if there is no such event."""
        if not 0 < event_id <= MAX_ID:
            return None
        now = time.time()
        with self._lock, self._transaction(f"cannot acknowledge event {event_id}"):
            if self._find(event_id) is None:
                return None  # (the empty transaction commits)
            self._execute("UPDATE events SET acknowledged = 1, ack_note = ?, "
                          "acknowledged_at = ? WHERE id = ?", (note, now, event_id))
            result = self._log(event_id, "ack", now)
        self._committed(result[0])
        return result

    def close_interrupted(self, cameras: Iterable[str] | None = None,
                          ) -> list[tuple[int, dict[str, Any]]]:
        """At start: close the alerts a previous run left open (it stopped without ending
        them), at the last time they were updated. Returns the stored end messages.

        `cameras`: only those cameras' alerts (a cluster's camera worker closes its own
        cameras' when it (re)starts, never another worker's); None: every camera's."""
        clause, params = "", ()
        if cameras is not None:
            wanted = tuple(dict.fromkeys([cameras] if isinstance(cameras, str) else cameras))
            if not wanted:
                return []
            clause, params = f" AND camera IN ({', '.join('?' * len(wanted))})", wanted
        with self._reading("cannot read the alerts left open"):
            ids = [r["id"] for r in self._execute(
                f"SELECT id FROM events WHERE state = 'open'{clause} ORDER BY id", params)]
        results = []
        for event_id in ids:
            with self._lock, self._transaction(f"cannot close alert {event_id}"):
                # Only while still open: another process may have closed it meanwhile.
                closed = self._execute("UPDATE events SET state = 'closed', "
                                       "ended_at = updated_at WHERE id = ? AND state = 'open'",
                                       (event_id,)).rowcount
                if closed:
                    results.append(self._log(event_id, "end", time.time()))
            if closed:
                self._committed(results[-1][0])
        return results

    # -- retention -----------------------------------------------------------------------

    def prune(self, max_age_days: float | None, max_bytes: int | None,
              now: float | None = None, max_clip_bytes: int | None = None) -> int:
        """Delete the snapshot, heatmap and clip files of events older than `max_age_days`,
        then of the oldest events until the images fit in `max_bytes` and the clips in
        `max_clip_bytes`. The events stay in the history (without them). Returns how many
        files were deleted."""
        now = time.time() if now is None else now
        cutoff = None if max_age_days is None else now - max_age_days * 86400
        return (self._prune_files(("snapshot", "heatmap"), self.snapshots, cutoff, max_bytes)
                + self._prune_files(("clip",), self.clips, cutoff, max_clip_bytes))

    def _prune_files(self, names: tuple[str, ...], folder: Path, cutoff: float | None,
                     max_bytes: int | None) -> int:
        """`prune` for the files of the columns `names`, which live under `folder`."""
        present = " OR ".join(f"{n} IS NOT NULL" for n in names)
        with self._reading(f"cannot read the {'/'.join(names)} files to prune"):
            rows = self._execute(
                f"SELECT id, started_at, {', '.join(names)} FROM events WHERE {present} "
                "ORDER BY started_at, id").fetchall()
        sizes = {row["id"]: sum(self._file_size(row[n], folder) for n in names) for row in rows}
        total = sum(sizes.values())
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
            for name in names:
                if row[name]:
                    try:
                        (folder / row[name]).unlink(missing_ok=True)
                    except OSError as exc:
                        raise StoreError(f"cannot delete {row[name]}: {_reason(exc)}") from None
                    deleted += 1
            with self._lock, self._transaction(f"cannot forget pruned {'/'.join(names)} files"):
                self._execute(f"UPDATE events SET {', '.join(f'{n} = NULL' for n in names)} "
                              "WHERE id = ?", (row["id"],))
        return deleted

    def _file_size(self, name: str | None, folder: Path | None = None) -> int:
        if not name:
            return 0
        try:
            return ((folder or self.snapshots) / name).stat().st_size
        except OSError:
            return 0

    # -- reading -------------------------------------------------------------------------

    def _find(self, event_id: int) -> dict[str, Any] | None:
        """The raw row (with file names), or None; the caller holds the lock."""
        if not 0 < event_id <= MAX_ID:  # SQLite cannot even be asked (OverflowError)
            return None
        row = self._execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return dict(row) if row else None

    def _row(self, event_id: int) -> dict[str, Any]:
        """The row inside a write, where a missing one is an error that rolls it back."""
        row = self._find(event_id)
        if row is None:
            raise Refused(f"event {event_id} does not exist")
        return row

    def get(self, event_id: int) -> dict[str, Any] | None:
        """The raw row (with file names), or None."""
        with self._reading(f"cannot read event {event_id}"):
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
        with self._reading("cannot read the alert history"):
            total = self._execute(f"SELECT COUNT(*) AS n FROM events {where}",
                                  params).fetchone()["n"]
            rows = self._execute(
                f"SELECT * FROM events {where} ORDER BY started_at DESC, id DESC "
                "LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return [event_json(dict(r)) for r in rows], int(total)

    def messages_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Alert messages after `seq`, oldest first, as the websocket sends them."""
        return [alert_message(m.seq, m.kind, m.event) for m in self.sink_messages(seq, limit)]

    def last_seq(self) -> int:
        with self._reading("cannot read the last alert message"):
            row = self._execute("SELECT MAX(seq) AS seq FROM messages").fetchone()
        return int(row["seq"] or 0)

    def image_path(self, event_id: int, name: str) -> Path | None:
        """The file of an event's snapshot or heatmap, only ever inside the snapshot folder."""
        row = self.get(event_id)
        if row is None or not row.get(name):
            return None
        path = (self.snapshots / row[name]).resolve()
        if not path.is_relative_to(self.snapshots.resolve()) or not path.is_file():
            return None
        return path

    # -- event clips (clips.py records them) ---------------------------------------------

    def clip_file(self, camera: str, event_id: int, suffix: str) -> tuple[str, Path]:
        """Where an event's clip goes: (its name relative to the clips folder, its path)."""
        relative = f"{camera}/{event_id}-clip{suffix}"
        return relative, self.clips / relative

    def attach_clip(self, event_id: int, relative: str) -> tuple[int, dict[str, Any]] | None:
        """Name the event's clip file (written complete, under the clips folder) and log an
        `update` message, so viewers, resuming clients and alert sinks learn its clip_url.
        Returns (seq, event), or None if there is no such event."""
        with self._lock, self._transaction(f"cannot store the clip of event {event_id}"):
            row = self._find(event_id)
            if row is None:
                return None  # (the empty transaction commits)
            self._execute("UPDATE events SET clip = ? WHERE id = ?", (relative, event_id))
            result = self._log(event_id, "update", row["updated_at"])
        self._committed(result[0])
        return result

    def clip_path(self, event_id: int) -> Path | None:
        """The file of an event's clip, only ever inside the clips folder."""
        row = self.get(event_id)
        if row is None or not row.get("clip"):
            return None
        path = (self.clips / row["clip"]).resolve()
        if not path.is_relative_to(self.clips.resolve()) or not path.is_file():
            return None
        return path

    # -- alert sinks: a durable cursor per sink over the messages table -------------------
    # A sink's cursor is the seq of the last message it has dealt with (delivered, filtered
    # out or skipped), committed in the same database as the messages: what a sink missed
    # survives a restart.

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """`listener(seq)` is called after each message is committed, from the writer's
        thread (SQLite) or the store's listening thread (PostgreSQL): it must only wake
        someone up."""
        self._listeners.append(listener)

    def _notify(self, seq: int) -> None:
        """Call every listener with `seq`."""
        for listener in list(self._listeners):
            try:
                listener(seq)
            except Exception:  # a listener's bug never fails a stored alert
                log.exception("an event store listener failed")

    def sink_cursor(self, sink: str) -> int | None:
        """The sink's cursor, or None for a sink never seen."""
        with self._reading(f"cannot read sink {sink}'s position"):
            row = self._execute("SELECT seq FROM sink_cursors WHERE sink = ?",
                                (sink,)).fetchone()
        return None if row is None else int(row["seq"])

    def set_sink_cursor(self, sink: str, seq: int) -> None:
        with self._lock, self._transaction(f"cannot store sink {sink}'s position"):
            self._execute("INSERT INTO sink_cursors (sink, seq, updated_at) VALUES (?, ?, ?) "
                          "ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, "
                          "updated_at = excluded.updated_at", (sink, seq, time.time()))

    def forget_sink(self, sink: str) -> None:
        with self._lock, self._transaction(f"cannot forget sink {sink}"):
            self._execute("DELETE FROM sink_cursors WHERE sink = ?", (sink,))

    def sink_messages(self, after: int, limit: int = 100) -> list[StoredMessage]:
        """The stored messages after seq `after`, oldest first (sinks; the websocket's resume
        through `messages_since`)."""
        if after >= MAX_ID:
            return []
        with self._reading("cannot read the alert messages"):
            rows = self._execute(
                "SELECT seq, kind, at, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (max(after, -MAX_ID), limit)).fetchall()
        return [StoredMessage(r["seq"], r["kind"], r["at"], json.loads(r["payload"]))
                for r in rows]

    def messages_after(self, after: int) -> int:
        """How many messages come after seq `after` (a sink's backlog)."""
        with self._reading("cannot count the alert messages"):
            row = self._execute("SELECT COUNT(*) AS n FROM messages WHERE seq > ?",
                                (max(min(after, MAX_ID), -MAX_ID),)).fetchone()
        return int(row["n"])


class EventStore(SqlEventStore):
    """The embedded store: SQLite (WAL) in `folder`/events.db, beside the files."""

    errors = (sqlite3.Error, OSError, Refused)

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        super().__init__(folder)
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
            self._add_missing_columns()
            self._remove_partial_clips()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the event store in {self.folder}: {exc}") from None

    def _add_missing_columns(self) -> None:
        """An events.db written by an earlier version lacks the newer columns: add them."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")

    def _remove_partial_clips(self) -> None:
        """Clips a previous run was still recording when it stopped (a crash) are partial
        files nothing names: remove them before any recorder starts."""
        if self.clips.is_dir():
            for partial in self.clips.glob(f"*/*{PARTIAL_CLIP}"):
                partial.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the dialect: one connection, in autocommit mode between explicit transactions ---

    def _execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def _insert_id(self, sql: str, params: tuple | list) -> int:
        return int(self._db.execute(sql, params).lastrowid)

    def _insert_message(self, event_id: int, kind: str, at: float, payload: str) -> int:
        # One writer at a time (BEGIN IMMEDIATE): seqs commit in their order.
        cursor = self._db.execute(
            "INSERT INTO messages (event_id, kind, at, payload) VALUES (?, ?, ?, ?)",
            (event_id, kind, at, payload))
        return int(cursor.lastrowid)

    def _begin(self) -> None:
        # IMMEDIATE: take the write lock now, not at the first write (no upgrade deadlock).
        self._db.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction was open
            self._db.execute("ROLLBACK")

    def _committed(self, seq: int) -> None:
        # One process writes this database: its listeners hear of each message directly.
        self._notify(seq)


def open_event_store(config: Config) -> EventStore | PostgresEventStore:
    """The event store the config asks for: PostgreSQL in cluster mode (psycopg is imported
    only then), else SQLite in the storage folder. The files stay in the storage folder
    either way (a volume every machine shares, in a cluster)."""
    if config.cluster is not None:
        from clipwatch.server.pg_store import PostgresEventStore

        return PostgresEventStore(config.cluster.database, config.storage.dir)
    return EventStore(config.storage.dir)


def _reason(exc: BaseException) -> str:
    """An OS error's reason without its file name (the message names the file), else the
    error's text."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


__all__ = ["EventStore", "SqlEventStore", "StoreError", "alert_message", "event_json",
           "open_event_store"]  # alert_message: messages.py
