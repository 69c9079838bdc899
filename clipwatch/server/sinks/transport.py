"""What a sink's delivery thread asks of its transport (webhook.py, mqtt.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from clipwatch.errors import ClipwatchError
from clipwatch.server.sinks.payload import Outgoing


class DeliveryFailed(ClipwatchError):
    """One try failed; the message is kept and tried again. The text is one line for a
    person, never with a password in it."""


class Transport(Protocol):
    connected: bool | None  # MQTT: connected to the broker now; webhooks: None
    last_error: str | None  # MQTT: why it is not connected (None: not tried yet)

    def start(self, nudge: Callable[[], None]) -> None:
        """Get ready; `nudge()` ends a retry wait early (an MQTT broker is back)."""

    def deliver(self, message: Outgoing) -> None:
        """Return once the receiver accepted the message (webhook: a 2xx answer; MQTT: the
        broker's PUBACK), else raise DeliveryFailed within about the sink's timeout_s.
        Called again with the same message after a failure: a transport that still holds it
        (MQTT) waits for it rather than sending a second copy."""

    def test(self, body: bytes) -> str:
        """Send a test message now; what happened, for a person, or DeliveryFailed."""

    def close(self) -> None: ...
