"""SinkManager: the service's alert sinks, their delivery threads, and changes at run time.

Built by the Service from the config; the REST API (routes/sinks.py) lists, adds, removes and
tests sinks through it. A sink added or removed through the API is written back to the config
file, as cameras are; removing a sink forgets its place in the alert stream (a sink added
again later starts from then). Sinks added through the API may not reach
`server.denied_networks` (loopback and link-local by default) unless `allowed_networks` says
so: checked when added and, for webhooks, before every try; config-file sinks are the
operator's and are not checked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from clipwatch.config import Config, SinkConfig
from clipwatch.errors import ClipwatchError
from clipwatch.server.event_store import EventStore, StoreError
from clipwatch.server.metrics import Metrics
from clipwatch.server.sinks.mqtt import MqttTransport
from clipwatch.server.sinks.payload import SinkTestMessage, encode
from clipwatch.server.sinks.transport import DeliveryFailed, Transport
from clipwatch.server.sinks.webhook import WebhookTransport
from clipwatch.server.sinks.worker import SinkWorker
from clipwatch.server.source_policy import denied_address, resolved_addresses
from clipwatch.stream.sources import mask_url

log = logging.getLogger(__name__)

MAX_SINKS = 32
DRAIN_S = 2.0  # at shutdown, how long sinks may take to deliver the alerts it closed
STORED_TIMES = 10_000  # messages whose store time is kept for the delivery latency metric
HOST_REFUSED = "url: this host may not be reached by sinks added through the API " \
               "(server.denied_networks)"


class UnknownSink(ClipwatchError):
    """No alert sink has that id."""


class SinkConflict(ClipwatchError):
    """An alert sink with that id already exists, or there are already 32."""


class SinkRefused(ClipwatchError):
    """The sink's host is one the server does not let sinks added through the API reach."""


class SinkDisabled(ClipwatchError):
    """The sink is disabled: it has no connection to test."""


class SinkManager:
    def __init__(self, config: Config, store: EventStore, metrics: Metrics,
                 lock: threading.RLock, persist: Callable[[], None]) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.lock = lock  # the service's: changes to the config come from API threads
        self.persist = persist
        self.workers: dict[str, SinkWorker] = {}
        self.api_sinks: set[str] = set()  # added through the API in this run: hosts checked
        self._stored: OrderedDict[int, float] = OrderedDict()
        self._stored_lock = threading.Lock()
        self.started = False
        store.add_listener(self._on_stored)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            for sink in self.config.sinks:
                self._start(sink)
            self.started = True

    def stop(self, drain_s: float = DRAIN_S) -> None:
        deadline = time.monotonic() + drain_s
        with self.lock:
            self.started = False
            workers = list(self.workers.values())
            self.workers.clear()
        for worker in workers:
            worker.stop(deadline)

    def _start(self, sink: SinkConfig) -> None:
        if not sink.enabled:
            return
        worker = SinkWorker(sink, self.store, self.metrics, self._transport(sink),
                            public_url=self.config.server.public_url,
                            stored_at=self._stored_at)
        self.workers[sink.id] = worker
        worker.start()

    def _transport(self, sink: SinkConfig) -> Transport:
        if sink.kind == "mqtt":
            return MqttTransport(sink)
        check = self._check_delivery_host if sink.id in self.api_sinks else None
        return WebhookTransport(sink, check)

    def _on_stored(self, seq: int) -> None:
        """The store committed a message (the writer's thread): note when, wake the sinks."""
        with self._stored_lock:
            self._stored[seq] = time.monotonic()
            while len(self._stored) > STORED_TIMES:
                self._stored.popitem(last=False)
        for worker in list(self.workers.values()):
            worker.wake()

    def _stored_at(self, seq: int) -> float | None:
        with self._stored_lock:
            return self._stored.pop(seq, None)

    # -- the API -------------------------------------------------------------------------

    def sink(self, sink_id: str) -> SinkConfig:
        for sink in self.config.sinks:
            if sink.id == sink_id:
                return sink
        raise UnknownSink(f"no sink {sink_id!r}")

    def views(self) -> list[dict[str, Any]]:
        return [self._view(s) for s in self.config.sinks]

    def view(self, sink_id: str) -> dict[str, Any]:
        return self._view(self.sink(sink_id))

    def _view(self, sink: SinkConfig) -> dict[str, Any]:
        """A sink as the API shows it: never its secret, nor a password in its URL."""
        view = sink.model_dump(mode="json", exclude={"secret"})
        view["url"] = mask_url(sink.url)
        view["signed"] = sink.secret is not None
        worker = self.workers.get(sink.id)
        if worker is not None:
            view["status"] = worker.status()
        else:
            view["status"] = {"state": "disabled" if not sink.enabled else "stopped",
                              "connected": None, "last_seq": self._cursor(sink.id),
                              "backlog": 0, "delivered": 0, "failures": 0, "skipped": 0,
                              "filtered": 0, "last_error": None, "last_error_at": None,
                              "last_success_at": None, "failing_since": None}
        return view

    def _cursor(self, sink_id: str) -> int | None:
        try:
            return self.store.sink_cursor(sink_id)
        except StoreError:
            return None

    def add(self, sink: SinkConfig, from_api: bool = False) -> dict[str, Any]:
        """Add a sink (written back to the config file) and start delivering to it."""
        if from_api:
            self._check_host(sink.url)
        with self.lock:
            if any(s.id == sink.id for s in self.config.sinks):
                raise SinkConflict(f"sink {sink.id!r} already exists")
            if len(self.config.sinks) >= MAX_SINKS:
                raise SinkConflict(f"there are already {MAX_SINKS} sinks; remove one first")
            if from_api:
                self.api_sinks.add(sink.id)
            self.config.sinks.append(sink)
            self.persist()
            if self.started:
                self._start(sink)
            return self._view(sink)

    def remove(self, sink_id: str) -> None:
        with self.lock:
            sink = self.sink(sink_id)
            self.config.sinks.remove(sink)
            self.persist()
            worker = self.workers.pop(sink_id, None)
            self.api_sinks.discard(sink_id)
        if worker is not None:
            worker.stop()
        self.metrics.forget_sink(sink_id)
        try:
            self.store.forget_sink(sink_id)
        except StoreError as exc:  # its old place stays: a sink added again resumes there
            log.error("sink %s removed, but %s", sink_id, exc)

    def test(self, sink_id: str) -> dict[str, Any]:
        """Send a test message now, past the sink's filters and queue."""
        self.sink(sink_id)  # UnknownSink (404) first
        worker = self.workers.get(sink_id)
        if worker is None:
            raise SinkDisabled(f"sink {sink_id!r} is disabled")
        body = encode(SinkTestMessage(sink=sink_id, sent_at=time.time(),
                                      message="a test message from clipwatch"))
        started = time.monotonic()
        try:
            detail = worker.transport.test(body)
            delivered = True
        except DeliveryFailed as exc:
            detail, delivered = str(exc), False
        return {"delivered": delivered, "detail": detail,
                "seconds": round(time.monotonic() - started, 4)}

    # -- the network policy for sinks added through the API ------------------------------

    def _check_host(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if any(denied_address(a, self.config.server) for a in resolved_addresses(host)):
            raise SinkRefused(HOST_REFUSED)

    def _check_delivery_host(self, host: str) -> None:
        if any(denied_address(a, self.config.server) for a in resolved_addresses(host)):
            raise DeliveryFailed("this host may not be reached by sinks added through the "
                                 "API (server.denied_networks)")
