"""MQTT sink: each message published with QoS 1 to <topic>/<camera>/<event id>/<transition>.

One paho-mqtt client per sink, with its own network thread (`loop_start`) that connects and
reconnects by itself (waiting retry_min_s, doubling up to retry_max_s). A message counts as
delivered when the broker's PUBACK arrives. A message published while the broker is away
stays in the client, which sends it again (in order) once it is back; the sink's thread
meanwhile counts failed tries and waits, and is woken as soon as the client reconnects.
Credentials come from the URL (mqtt://user:password@host:port); mqtts:// is TLS, checked
against the system's CA certificates or the sink's ca_file.
Subscribers: `<topic>/#` (everything), `<topic>/<camera>/#` (one camera),
`<topic>/+/<event id>/#` (one alert). A test message goes to `<topic>/_test` (no camera id
starts with '_').
"""

from __future__ import annotations

import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from clipwatch.config import SinkConfig
from clipwatch.server.sinks.payload import Outgoing
from clipwatch.server.sinks.transport import DeliveryFailed

log = logging.getLogger(__name__)

KEEPALIVE_S = 30  # a broker that vanished without closing the connection is noticed by then
TEST_TOPIC = "_test"


class MqttTransport:
    def __init__(self, sink: SinkConfig) -> None:
        self.sink = sink
        parts = urlsplit(sink.url)
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname or ""
        self.port = parts.port or (8883 if self.tls else 1883)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"clipwatch-{sink.id}-{secrets.token_hex(4)}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if parts.username is not None:
            self.client.username_pw_set(unquote(parts.username),
                                        None if parts.password is None
                                        else unquote(parts.password))
        if self.tls:
            self.client.tls_set(ca_certs=str(sink.ca_file) if sink.ca_file else None,
                                cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min(sink.retry_min_s, sink.retry_max_s),
                                        sink.retry_max_s)
        self.client.connect_timeout = sink.timeout_s  # a blackholed broker: each try gives up
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish
        self.connected: bool | None = False
        self.last_error: str | None = None  # why it is not connected (None: not tried yet)
        self._cond = threading.Condition()
        self._acked: set[int] = set()  # mids the broker acknowledged, not yet collected
        self._abandoned: set[int] = set()  # mids nobody waits for any more (timed-out tests)
        self._pending: dict[int, int] = {}  # seq -> mid of a message the client still holds
        self._nudge: Callable[[], None] = lambda: None
        self._logged_down = False
        self._closing = False

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- life cycle ------------------------------------------------------------------------

    def start(self, nudge: Callable[[], None]) -> None:
        self._nudge = nudge
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()  # its thread connects, and reconnects with backoff

    def close(self) -> None:
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()

    # -- the client's callbacks (its network thread) --------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._down(f"the broker at {self.where} refused the connection: {reason_code}")
            return
        self.connected, self.last_error = True, None
        if self._logged_down:
            log.info("sink %s: connected to the broker at %s again", self.sink.id, self.where)
            self._logged_down = False
        self._nudge()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected:  # (after a refused connection, the refusal says more)
            self._down(f"lost the broker at {self.where} ({reason_code})")

    def _on_connect_fail(self, client, userdata) -> None:
        # paho does not say why (refused, unreachable, timed out, TLS handshake failed)
        tls = " or its TLS certificate is not trusted" if self.tls else ""
        self._down(f"cannot connect to the broker at {self.where} (refused, unreachable, "
                   f"no answer within {self.sink.timeout_s:g} s{tls})")

    def _down(self, reason: str) -> None:
        self.connected, self.last_error = False, reason
        if not self._logged_down and not self._closing:
            log.warning("sink %s: %s; reconnecting by itself, messages wait in order",
                        self.sink.id, reason)
            self._logged_down = True

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            if mid in self._abandoned:
                self._abandoned.discard(mid)
                return
            self._acked.add(mid)
            self._cond.notify_all()

    # -- sending -------------------------------------------------------------------------

    def deliver(self, message: Outgoing) -> None:
        with self._cond:
            mid = self._pending.get(message.seq)
        if mid is None:  # not sent yet (else the client still holds it, and resends it)
            topic = f"{self.sink.topic}/{message.camera}/{message.event_id}/{message.kind}"
            mid = self._publish(topic, message.body)
            with self._cond:
                self._pending[message.seq] = mid
        if not self._wait(mid, self.sink.timeout_s):
            raise DeliveryFailed(self._why_not())
        with self._cond:
            self._pending.pop(message.seq, None)

    def test(self, body: bytes) -> str:
        if not self.connected:
            raise DeliveryFailed(self._why_not())
        started = time.monotonic()
        mid = self._publish(f"{self.sink.topic}/{TEST_TOPIC}", body)
        if not self._wait(mid, self.sink.timeout_s):
            with self._cond:
                if mid in self._acked:
                    self._acked.discard(mid)
                else:
                    self._abandoned.add(mid)
            raise DeliveryFailed(self._why_not())
        return (f"published to {self.sink.topic}/{TEST_TOPIC}, acknowledged by the broker in "
                f"{1000 * (time.monotonic() - started):.0f} ms")

    def _publish(self, topic: str, body: bytes) -> int:
        info = self.client.publish(topic, body, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise DeliveryFailed("the MQTT client's queue is full")
        return info.mid

    def _wait(self, mid: int, timeout: float) -> bool:
        """Whether the broker acknowledged `mid` within `timeout` (collected if so)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._acked.discard(mid)
        return True

    def _why_not(self) -> str:
        if not self.connected:
            return self.last_error or f"not connected to the broker at {self.where}"
        return f"no acknowledgement (PUBACK) from the broker within {self.sink.timeout_s:g} s"
