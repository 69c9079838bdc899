"""/api/sinks: alert sinks (webhooks, MQTT brokers) with their delivery status; admins add,
remove and test them. Secrets and passwords are never part of an answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Path

from clipwatch.config import CAMERA_ID_PATTERN, SinkConfig
from clipwatch.server.auth import Admin
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import responses
from clipwatch.server.schemas import SinkTestResult, SinkView
from clipwatch.server.sinks import SinkConflict, SinkDisabled, SinkRefused, UnknownSink
from clipwatch.server.sinks.payload import SinkAlertMessage

router = APIRouter(prefix="/api/sinks", tags=["sinks"])
SinkId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="the sink's id")]


@router.get("")
def list_sinks(service: ServiceDep) -> list[SinkView]:
    return [SinkView.model_validate(view) for view in service.sinks.views()]


@router.post("", status_code=201, responses=responses(SinkConflict, SinkRefused))
def add_sink(sink: SinkConfig, service: ServiceDep, _: Admin) -> SinkView:
    """Add a sink; it receives the alert messages from now on. Written back to the config
    file. Its host may not be in server.denied_networks (unless allowed_networks lists it):
    422 otherwise; 409 for an id in use or beyond 32 sinks."""
    return SinkView.model_validate(service.sinks.add(sink, from_api=True))


@router.get("/{sink_id}", responses=responses(UnknownSink))
def get_sink(sink_id: SinkId, service: ServiceDep) -> SinkView:
    return SinkView.model_validate(service.sinks.view(sink_id))


@router.delete("/{sink_id}", status_code=204, responses=responses(UnknownSink))
def remove_sink(sink_id: SinkId, service: ServiceDep, _: Admin) -> None:
    service.sinks.remove(sink_id)


@router.post("/{sink_id}/test", responses=responses(UnknownSink, SinkDisabled))
def test_sink(sink_id: SinkId, service: ServiceDep, _: Admin) -> SinkTestResult:
    """Send a test message now (webhook: a signed POST of `{"type": "test", ...}`; MQTT: to
    <topic>/_test). A receiver that fails is no error here: `delivered` is false and
    `detail` says why."""
    return SinkTestResult.model_validate(service.sinks.test(sink_id))


def document_webhooks(app: FastAPI) -> None:
    """What a webhook sink receives, in the OpenAPI document's `webhooks` (/docs shows it)."""

    @app.webhooks.post("alert-sink")
    def alert_sink(
        message: SinkAlertMessage,
        x_clipwatch_signature: Annotated[str, Header(
            description="sha256=<hex HMAC-SHA256 of the raw body with the sink's secret>")],
        x_clipwatch_seq: Annotated[int, Header(description="the message's seq")],
        x_clipwatch_event: Annotated[str, Header(description="start, update, end or ack")],
    ) -> None:
        """One alert transition, POSTed to each webhook sink whose filters let it through;
        any 2xx answer is delivery, anything else is retried. MQTT sinks publish the same
        JSON (QoS 1) to <topic>/<camera>/<event id>/<transition>."""
