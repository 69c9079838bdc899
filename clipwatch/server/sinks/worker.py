"""SinkWorker: one alert sink's delivery thread, a durable outbox over the event store.

Every alert transition is stored in the event store's `messages` table, in order, before it
is broadcast. A sink's outbox is its cursor in that table (`sink_cursors`, in the same
database): the thread reads the messages after it, passes each through the sink's filters,
delivers it, and moves the cursor past it only once the receiver accepted it. So a receiver
that is down or slow holds up only its own sink, never the pipeline (which only stores and
wakes the thread), and what it missed is delivered, in order, when it is back, even across a
restart of the service. A new sink starts at the newest message: it gets the alerts from when
it was added on.

Failed tries are retried after retry_min_s, doubling up to retry_max_s (with jitter); a
message is never skipped for failing, only past the sink's bound: a sink more than
`max_backlog` messages behind skips the oldest down to that many, and a message older than
`max_age_hours` when its turn comes is skipped; both are counted (metrics, API) and logged
once per streak. Delivery is at least once: a message whose acknowledgement was lost (or
whose cursor could not be stored before a crash) comes again with the same `seq`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from clipwatch.config import SinkConfig
from clipwatch.server.event_store import EventStore, StoredMessage, StoreError
from clipwatch.server.metrics import Metrics
from clipwatch.server.sinks.payload import outgoing, passes
from clipwatch.server.sinks.transport import DeliveryFailed, Transport

log = logging.getLogger(__name__)

BATCH = 100  # messages read from the store at a time
IDLE_WAIT_S = 5.0  # look at the store this often even when nothing woke the thread
STORE_RETRY_S = 5.0  # the store refused a read or write: try again after this long


class SinkWorker:
    def __init__(self, sink: SinkConfig, store: EventStore, metrics: Metrics,
                 transport: Transport, public_url: str | None = None,
                 stored_at: Callable[[int], float | None] = lambda seq: None) -> None:
        self.sink = sink
        self.store = store
        self.metrics = metrics
        self.transport = transport
        self.public_url = public_url
        self.stored_at = stored_at  # monotonic time a message was stored, when known
        self.cursor: int | None = None
        self._saved: int | None = None  # the cursor as last committed
        self._wake = threading.Event()  # a message was stored
        self._nudge = threading.Event()  # end a retry wait now (stop, a broker came back)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.id}", daemon=True)
        # Status, since the service started (read by API threads).
        self.delivered = self.failures = self.skipped = self.filtered = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.failing_since: float | None = None
        self._streak = 0  # failed tries in the current streak
        self._skipping = 0  # messages skipped in the current streak (for the log)
        self._store_failing = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.transport.start(self._nudge.set)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, deadline: float | None = None) -> None:
        """Stop; first, until `deadline` (monotonic), deliver what waits while the receiver
        takes it (the alerts a shutdown closes)."""
        while deadline is not None and time.monotonic() < deadline and self._thread.is_alive() \
                and self.failing_since is None and self.backlog():
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        self._nudge.set()
        self._thread.join(self.sink.timeout_s + 1)
        self.transport.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def backlog(self) -> int:
        """Messages after the cursor (to deliver, or to filter out)."""
        if self.cursor is None:
            return 0
        try:
            return max(0, self.store.last_seq() - self.cursor)
        except StoreError:
            return 0

    def status(self) -> dict[str, Any]:
        failing = self.failing_since is not None
        connected, last_error = self.transport.connected, self.last_error
        # A broker that cannot be reached is a failing sink before any alert needs it.
        down = connected is False and self.transport.last_error is not None
        if down:
            last_error = self.transport.last_error
        starting = self.cursor is None or (connected is False and not down)
        return {
            "state": "failing" if failing or down else "starting" if starting else "ok",
            "connected": connected,
            "last_seq": self.cursor,
            "backlog": self.backlog(),
            "delivered": self.delivered,
            "failures": self.failures,
            "skipped": self.skipped,
            "filtered": self.filtered,
            "last_error": last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
            "failing_since": self.failing_since,
        }

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug: say so once; the sink shows as failing
            log.exception("sink %s: its delivery thread failed", self.sink.id)
            self._failed("the delivery thread failed (see the log)")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self.cursor is None:
                    self.cursor = self._first_cursor()
                self._skip_beyond_bound()
                batch = self.store.sink_messages(self.cursor, BATCH)
            except StoreError as exc:
                self._store_failed(exc)
                self._stop.wait(min(self.sink.retry_max_s, STORE_RETRY_S))
                continue
            self.metrics.sink_backlog.labels(self.sink.id).set(self.backlog())
            if not batch:
                self._wake.wait(IDLE_WAIT_S)
                continue
            for message in batch:
                if self._stop.is_set() or not self._take(message):
                    break  # stopping, or the bound moved the cursor: read again
            self._save_cursor()

    def _first_cursor(self) -> int:
        cursor = self.store.sink_cursor(self.sink.id)
        if cursor is None:  # a new sink: from now on
            cursor = self.store.last_seq()
            self.store.set_sink_cursor(self.sink.id, cursor)
            self._saved = cursor
        else:
            self._saved = cursor
        return cursor

    def _take(self, message: StoredMessage) -> bool:
        """Deal with one message: deliver it (retrying), or pass it by. False when the
        cursor has moved elsewhere (the bound) or the thread stops."""
        if self._too_old(message):
            self._skip_to(message.seq, 1, f"older than {self.sink.max_age_hours:g} h")
            return True
        try:
            if not passes(self.sink, message.kind, message.event):
                self.cursor = message.seq
                self.filtered += 1
                return True
            out = outgoing(self.sink.id, message, self.public_url)
        except (ValueError, KeyError, TypeError) as exc:  # a stored payload it cannot read
            log.error("sink %s: message %d cannot be sent (%s); skipped", self.sink.id,
                      message.seq, exc)
            self.skipped += 1
            self.metrics.sink_skipped.labels(self.sink.id).inc()
            self.cursor = message.seq
            return True
        delay = self.sink.retry_min_s
        while not self._stop.is_set():
            self._nudge.clear()  # set from here on: a broker came back, retry at once
            try:
                self.transport.deliver(out)
            except DeliveryFailed as exc:
                self._failed(str(exc))
                self._nudge.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.sink.retry_max_s)
                if self._stop.is_set():
                    return False
                if self._skip_beyond_bound():
                    return False
                if self._too_old(message):
                    self._skip_to(message.seq, 1, f"older than {self.sink.max_age_hours:g} h")
                    return True
                continue
            self._delivered(message)
            return True
        return False

    # -- outcomes ------------------------------------------------------------------------

    def _delivered(self, message: StoredMessage) -> None:
        self.cursor = message.seq
        self._save_cursor()
        self.delivered += 1
        self.last_success_at = time.time()
        self.metrics.sink_delivered.labels(self.sink.id).inc()
        stored = self.stored_at(message.seq)
        if stored is not None:
            self.metrics.sink_delivery_seconds.labels(self.sink.id).observe(
                time.monotonic() - stored)
        if self._streak:
            log.warning("sink %s: delivering again, after %d failed tries in %.0f s",
                        self.sink.id, self._streak, time.time() - (self.failing_since or 0))
        if self._skipping:
            log.warning("sink %s: caught up with its bound after skipping %d messages",
                        self.sink.id, self._skipping)
        self._streak = self._skipping = 0
        self.failing_since = None

    def _failed(self, reason: str) -> None:
        now = time.time()
        self.failures += 1
        self.metrics.sink_failures.labels(self.sink.id).inc()
        self.last_error, self.last_error_at = reason, now
        self._streak += 1
        if self.failing_since is None:
            self.failing_since = now
            log.warning("sink %s: delivery failed: %s (retried with backoff up to %g s; "
                        "messages wait in order)", self.sink.id, reason, self.sink.retry_max_s)

    def _too_old(self, message: StoredMessage) -> bool:
        return time.time() - message.at > self.sink.max_age_hours * 3600

    def _skip_beyond_bound(self) -> bool:
        """Past max_backlog, move the cursor to keep only the newest max_backlog messages."""
        assert self.cursor is not None
        try:
            excess = self.store.last_seq() - self.cursor - self.sink.max_backlog
        except StoreError:  # read again later
            return False
        if excess <= 0:
            return False
        self._skip_to(self.cursor + excess, excess,
                      f"more than {self.sink.max_backlog} messages behind")
        return True

    def _skip_to(self, seq: int, count: int, why: str) -> None:
        if not self._skipping:
            log.error("sink %s: %s: skipping the oldest messages (counted in "
                      "clipwatch_sink_skipped_total)", self.sink.id, why)
        self._skipping += count
        self.skipped += count
        self.metrics.sink_skipped.labels(self.sink.id).inc(count)
        self.cursor = seq
        self._save_cursor()

    def _save_cursor(self) -> None:
        """Commit the cursor; when the store refuses, carry on (a restart may repeat some
        messages) and try again next time."""
        if self.cursor is None or self.cursor == self._saved:
            return
        try:
            self.store.set_sink_cursor(self.sink.id, self.cursor)
        except StoreError as exc:
            self._store_failed(exc)
            return
        self._saved = self.cursor
        if self._store_failing:
            log.warning("sink %s: the event store takes its position again", self.sink.id)
            self._store_failing = False

    def _store_failed(self, exc: StoreError) -> None:
        if not self._store_failing:
            log.error("sink %s: %s (retried)", self.sink.id, exc)
            self._store_failing = True
