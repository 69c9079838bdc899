"""What an alert sink receives: one JSON document per alert transition, or a test message.

An alert message is the websocket's `alert` message (the stored event, as the API shows it)
with the sink's id and the alert's severity added, and the links to the snapshot, heatmap and
clip made absolute when `server.public_url` is set. `seq` is the message's sequence number
over all alert messages: it only grows, so a receiver keeps order and drops a message it has
already seen (delivery is at least once: a message whose acknowledgement was lost comes
again). A webhook's body is signed: `X-Clipwatch-Signature: sha256=<hex HMAC-SHA256 of the
raw body with the sink's secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clipwatch.config import SinkSettings
from clipwatch.server.event_store import StoredMessage
from clipwatch.server.messages import AlertKind
from clipwatch.server.schemas import Event

SIGNATURE_HEADER = "X-Clipwatch-Signature"
LINKS = ("snapshot_url", "heatmap_url", "clip_url")


class SinkAlertMessage(BaseModel):
    """The body of a webhook's POST and of an MQTT message, one per alert transition."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["alert"] = "alert"
    seq: int = Field(description="sequence number over all alert messages: increasing and "
                                 "unique, so a receiver can keep order and drop a repeat")
    event: AlertKind = Field(description="the transition: start, update, end or ack")
    sink: str = Field(description="the sink's id")
    severity: float = Field(description="how far the alert's lowest regularity fell below its "
                                        "threshold (0 or more)")
    alert: Event = Field(description="the event as the API shows it; links absolute when "
                                     "server.public_url is set")


class SinkTestMessage(BaseModel):
    """What `POST /api/sinks/{id}/test` sends (MQTT: to <topic>/_test)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["test"] = "test"
    sink: str
    sent_at: float = Field(description="epoch seconds")
    message: str


@dataclass(frozen=True)
class Outgoing:
    """One message on its way to a sink: its body, and what a transport routes it by."""

    seq: int
    kind: str
    camera: str
    event_id: int
    body: bytes


def severity(event: dict[str, Any]) -> float:
    return max(0.0, float(event["threshold"]) - float(event["lowest_regularity"]))


def passes(sink: SinkSettings, kind: str, event: dict[str, Any]) -> bool:
    """Whether the sink's filters let this transition through."""
    if kind not in sink.transitions:
        return False
    if sink.cameras is not None and event["camera"] not in sink.cameras:
        return False
    if sink.zones is not None and event.get("zone") not in sink.zones:
        return False
    return severity(event) >= sink.min_severity


def with_links(event: dict[str, Any], public_url: str | None) -> dict[str, Any]:
    """The event with its image and clip links under `public_url` (as they are without)."""
    if not public_url:
        return event
    base = public_url.rstrip("/")
    return event | {k: base + event[k] for k in LINKS
                    if isinstance(event.get(k), str) and event[k].startswith("/")}


def encode(document: BaseModel) -> bytes:
    """Compact JSON: the bytes sent are the bytes signed."""
    return json.dumps(document.model_dump(mode="json"), separators=(",", ":")).encode()


def outgoing(sink_id: str, message: StoredMessage, public_url: str | None) -> Outgoing:
    event = message.event
    document = SinkAlertMessage(seq=message.seq, event=message.kind, sink=sink_id,
                                severity=round(severity(event), 6),
                                alert=with_links(event, public_url))
    return Outgoing(message.seq, message.kind, event["camera"], event["id"], encode(document))


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: 'sha256=' and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), signature)
