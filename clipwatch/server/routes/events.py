"""/api/events: alert history with filters and paging, acknowledge, snapshot and heatmap."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import MissingImage, UnknownEvent, responses
from clipwatch.server.event_store import MAX_ID, StoreError, event_json
from clipwatch.server.messages import AlertMessage
from clipwatch.server.schemas import Event, EventPage
from clipwatch.server.service import Service

router = APIRouter(prefix="/api/events", tags=["events"])
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}}
# An id SQLite can hold: a larger one is refused (422) before it reaches the store.
EventId = Annotated[int, Path(ge=1, le=MAX_ID, description="the event's id")]


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000, description="what the operator saw or did")


@router.get("")
def list_events(
    service: ServiceDep,
    camera: str | None = Query(None, max_length=32),
    since: float | None = Query(None, description="started at or after (epoch seconds)"),
    until: float | None = Query(None, description="started before (epoch seconds)"),
    acknowledged: bool | None = None,
    state: Literal["open", "closed"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> EventPage:
    items, total = service.store.list(camera, since, until, acknowledged, state, limit, offset)
    return EventPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{event_id}", responses=responses(UnknownEvent))
def get_event(event_id: EventId, service: ServiceDep) -> Event:
    row = service.store.get(event_id)
    if row is None:
        raise UnknownEvent(f"no event {event_id}")
    return Event.model_validate(event_json(row))


@router.post("/{event_id}/ack", responses=responses(UnknownEvent, StoreError))
def acknowledge(event_id: EventId, body: Acknowledgement, service: ServiceDep) -> Event:
    """Mark the event acknowledged; viewers get an `alert` message with `event: "ack"`."""
    result = service.store.acknowledge(event_id, body.note.strip())
    if result is None:
        raise UnknownEvent(f"no event {event_id}")
    seq, event = result
    service.hub.publish(AlertMessage(seq=seq, event="ack", alert=event))
    return Event.model_validate(event)


def _image(event_id: int, name: str, service: Service) -> FileResponse:
    path = service.store.image_path(event_id, name)
    if path is None:
        raise MissingImage(f"event {event_id} has no {name}")
    return FileResponse(path, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=60"})


@router.get("/{event_id}/snapshot.jpg", response_class=FileResponse,
            responses=JPEG | responses(MissingImage))
def snapshot(event_id: EventId, service: ServiceDep) -> FileResponse:
    """The alert's worst frame."""
    return _image(event_id, "snapshot", service)


@router.get("/{event_id}/heatmap.jpg", response_class=FileResponse,
            responses=JPEG | responses(MissingImage))
def heatmap(event_id: EventId, service: ServiceDep) -> FileResponse:
    """The worst frame with its heatmap over it."""
    return _image(event_id, "heatmap", service)
