"""Every message of the live channel (`WS /ws`), both ways, and how /docs shows them.

Server to client, JSON text, told apart by `type`:
  hello    on connecting: the cameras and the last alert sequence number
  score    one per scored frame of a subscribed camera
  status   a camera's state changed (connecting, learning, live, lost, ended, stopped)
  cameras  the camera list changed (added, changed, removed through the API)
  alert    an alert started, was updated, ended or was acknowledged; `seq` orders them all
  recording  a camera's normal-footage recording changed or progressed (about once a second)
  learning   a learning job changed or progressed (about once a second while it trains)
  error    the client's last message was refused (the connection stays open)
  pong     the answer to a ping
and binary: the video frames, 4-byte big-endian header length, a JSON `FrameHeader`, the JPEG.

Client to server, JSON text: subscribe, resume (alerts missed since a sequence number), ping.

Code that sends builds a message from its class, e.g.
`hub.publish(ScoreMessage(camera=..., frame=..., ...))`; the hub queues `message.wire()`, the
plain dict that goes out as JSON. The OpenAPI document lists these models under
components/schemas (ServerMessage, ClientMessage, FrameHeader) and points at them from the
`x-websocket` entry at its root (see `document`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from clipwatch.server.schemas import (
    CameraState,
    CameraView,
    Event,
    LearningJobView,
    RecordingView,
)

WS_PATH = "/ws"
MAX_SEQ = 2**63 - 1  # the store's largest sequence number (SQLite's largest integer)
AlertKind = Literal["start", "update", "end", "ack"]


class _ServerMessage(BaseModel):
    # Built by the service: a wrong or unknown field is a bug, refused at construction.
    # `type` has a default so callers need not repeat it; the schema still marks it required.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    def wire(self) -> dict[str, Any]:
        """The message as the hub queues it and sends it as JSON."""
        return self.model_dump(mode="json")


class HelloMessage(_ServerMessage):
    """The first message on every connection."""

    type: Literal["hello"] = "hello"
    server_time: float = Field(description="the server's clock (epoch seconds)")
    last_seq: int = Field(description="the newest alert message's sequence number (0: none); "
                                      "send it back in `resume` after a reconnect")
    cameras: list[CameraView]


class ScoreMessage(_ServerMessage):
    """One scored frame of a subscribed camera (the newest 512 are kept for a slow client)."""

    type: Literal["score"] = "score"
    camera: str
    frame: int = Field(description="the camera's frame index")
    captured_at: float = Field(description="when the frame was read (epoch seconds)")
    regularity: float | None = Field(description="causal regularity; None while the camera "
                                                 "learns its baseline or warms up")
    error: float = Field(description="e(t), the reconstruction error after smoothing")
    threshold: float | None = Field(description="the alert threshold in force")
    alerting: bool = Field(description="whether an alert is open on this camera (its own or "
                                       "one of its zones')")
    zones: dict[str, float | None] = Field(
        default_factory=dict, description="each zone's causal regularity (None while it "
                                          "learns its baseline or warms up); {} without zones")


class StatusMessage(_ServerMessage):
    type: Literal["status"] = "status"
    camera: str
    state: CameraState
    reason: str | None
    since: float = Field(description="when it entered this state (epoch seconds)")


class CamerasMessage(_ServerMessage):
    """The whole camera list, after one was added, changed or removed."""

    type: Literal["cameras"] = "cameras"
    cameras: list[CameraView]


class AlertMessage(_ServerMessage):
    """An alert transition, stored before it is sent; never dropped for a slow client."""

    type: Literal["alert"] = "alert"
    seq: int = Field(description="sequence number over all alert messages, from 1")
    event: AlertKind = Field(description="start, update (a lower regularity, at most one a "
                                         "second), end or ack (acknowledged)")
    alert: Event


class RecordingMessage(_ServerMessage):
    """A recording of normal footage started, progressed, paused, ended or lost frames."""

    type: Literal["recording"] = "recording"
    recording: RecordingView


class LearningMessage(_ServerMessage):
    """A learning job started, progressed (stage, step, loss, clips/s, time left) or ended."""

    type: Literal["learning"] = "learning"
    job: LearningJobView


class ErrorMessage(_ServerMessage):
    type: Literal["error"] = "error"
    message: str = Field(description="why the client's last message was refused")


class PongMessage(_ServerMessage):
    type: Literal["pong"] = "pong"
    server_time: float


class FrameHeader(BaseModel):
    """The JSON header of a binary video message: 4-byte big-endian length of this header,
    the header, then the JPEG (the frame, or the frame with its heatmap over it)."""

    model_config = ConfigDict(extra="forbid")
    camera: str
    frame: int = Field(description="the frame index, as in its score message")
    captured_at: float
    overlay: bool = Field(description="whether the JPEG carries the heatmap")


class SubscribeMessage(BaseModel):
    """Which cameras to follow (scores, frames); alerts, status and camera changes come
    regardless. Sent again to change the subscription."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["subscribe"]
    cameras: list[str] = Field(default_factory=lambda: ["*"], max_length=256,
                               description="camera ids, or ['*'] for every camera")
    video: bool = Field(True, description="send the frames as binary messages")
    overlay: bool = Field(True, description="frames with the heatmap over them")


class ResumeMessage(BaseModel):
    """After a reconnect: replay the alert messages after `since` from the store."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["resume"]
    since: int = Field(ge=0, le=MAX_SEQ, description="the last alert `seq` this client saw")


class PingMessage(BaseModel):
    # Anything else in a ping is ignored, as it always was.
    type: Literal["ping"]


SERVER_MESSAGE_TYPES = (HelloMessage, ScoreMessage, StatusMessage, CamerasMessage, AlertMessage,
                        RecordingMessage, LearningMessage, ErrorMessage, PongMessage)
CLIENT_MESSAGE_TYPES = (SubscribeMessage, ResumeMessage, PingMessage)
ServerMessage = Annotated[Union[SERVER_MESSAGE_TYPES], Field(discriminator="type")]  # noqa: UP007
ClientMessage = Annotated[Union[CLIENT_MESSAGE_TYPES], Field(discriminator="type")]  # noqa: UP007
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(ServerMessage)
CLIENT_MESSAGES: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def message_type(model: type[BaseModel]) -> str:
    """The `type` tag of a message class."""
    return get_args(model.model_fields["type"].annotation)[0]


CLIENT_MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    message_type(m): m for m in CLIENT_MESSAGE_TYPES}


def to_wire(message: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """A message as the hub queues it: a model's JSON-ready dict; a dict as it is (alert
    messages replayed from the store are already in that form)."""
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json")
    return message  # type: ignore[return-value]


def alert_message(seq: int, kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """An alert transition as sent and as replayed from the store (`event`: the stored
    event, as `event_store.event_json` makes it)."""
    return AlertMessage(seq=seq, event=kind, alert=event).wire()


# -- OpenAPI ----------------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
DESCRIPTION = f"""
**Live channel**: `WS {WS_PATH}` (the same credentials as the REST API; closed with 4401
without them; a handshake from a page of another origin than the service's own, or one in
`server.allowed_origins`, is refused with 403). The client sends `ClientMessage`s
(subscribe, resume, ping) as JSON text; the server sends `ServerMessage`s (hello, score,
status, cameras, alert, error, pong) as JSON text and video frames as binary messages: a
4-byte big-endian header length, a JSON `FrameHeader`, then the JPEG. Their schemas are
listed under *Schemas* below and under `x-websocket` in `/openapi.json`.
"""


def document(openapi: dict[str, Any]) -> None:
    """Add the websocket's message schemas to an OpenAPI document (components/schemas) and an
    `x-websocket` entry at its root that names them."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, adapter, mode in (("ServerMessage", SERVER_MESSAGES, "serialization"),
                                ("ClientMessage", CLIENT_MESSAGES, "validation"),
                                ("FrameHeader", TypeAdapter(FrameHeader), "serialization")):
        schema = adapter.json_schema(mode=mode, ref_template=_REF)
        for def_name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)  # CameraView, Event: the REST ones
        schemas[name] = {"title": name, **schema}
    openapi["x-websocket"] = {
        "path": WS_PATH,
        "description": DESCRIPTION.strip(),
        "server_messages": {"$ref": _REF.format(model="ServerMessage")},
        "client_messages": {"$ref": _REF.format(model="ClientMessage")},
        "binary_frame_header": {"$ref": _REF.format(model="FrameHeader")},
        "close_codes": {"4401": "not signed in", "1013": "too far behind: reconnect and "
                        "resume"},
    }
