"""SinkLeadership: the alert sinks of a site run in one web process at a time.

Every web process of a cluster site reads the same alert messages from PostgreSQL, and each
sink keeps its place in them (its cursor, in the database). Were every process to run the
sinks, each webhook and MQTT message would go out once per process; so only the process
holding a PostgreSQL session advisory lock runs them. The lock is the database's: it goes
with the holder's connection, so when that process dies (or loses the database) another
takes the lock within `retry_s` and its sinks resume from the stored cursors: a message in
flight at the switch may be sent twice, never lost (the sinks' at-least-once promise).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

SINKS_LOCK = 0x636C_6970_5331  # the advisory lock key: one per database, "clipS1"
RETRY_S = 5.0


class SinkLeadership:
    def __init__(self, url: str, sinks: Any, retry_s: float = RETRY_S) -> None:
        self.url = url
        self.sinks = sinks  # the process's SinkManager: started while this process leads
        self.retry_s = retry_s
        self.leading = False
        self._db = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sink-leadership", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.retry_s + 5)
        self._resign()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._check()
            except Exception as exc:  # the database is away: try again later
                if self.leading:
                    log.warning("alert sinks: lost the database (%s); stopping them here until "
                                "this process leads again", type(exc).__name__)
                self._resign()
            self._stop.wait(self.retry_s)

    def _check(self) -> None:
        import psycopg

        from clipwatch.server.pg_store import CONNECT_TIMEOUT_S, KEEPALIVES

        if self.leading:
            self._db.execute("SELECT 1")  # the lock lives as long as this connection
            return
        if self._db is None or self._db.closed:
            self._db = psycopg.connect(self.url, autocommit=True,
                                       connect_timeout=CONNECT_TIMEOUT_S,
                                       application_name="clipwatch-sinks", **KEEPALIVES)
        (won,) = self._db.execute("SELECT pg_try_advisory_lock(%s)", (SINKS_LOCK,)).fetchone()
        if won:
            self.leading = True
            log.info("alert sinks run in this web process (it holds the sinks lock)")
            self.sinks.start()

    def _resign(self) -> None:
        if self.leading:
            self.leading = False
            self.sinks.stop()
        if self._db is not None:
            with contextlib.suppress(Exception):  # a broken connection holds no lock
                self._db.close()  # releases the lock
            self._db = None
