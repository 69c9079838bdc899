"""/api/events: alert history with filters and paging, acknowledge, snapshot, heatmap and the
event's clip (served with HTTP range requests, which a browser's video player makes)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.server.clips import MEDIA_TYPES
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import MissingClip, MissingImage, UnknownEvent, responses
from clipwatch.server.event_store import MAX_ID, StoreError, event_json
from clipwatch.server.messages import AlertMessage
from clipwatch.server.schemas import Event, EventPage
from clipwatch.server.service import Service

router = APIRouter(prefix="/api/events", tags=["events"])
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}}
# An id SQLite can hold: a larger one is refused (422) before it reaches the store.
EventId = Annotated[int, Path(ge=1, le=MAX_ID, description="the event's id")]


def video(suffix: str) -> dict[int | str, dict]:
    """The OpenAPI answer of a clip route: its one media type."""
    return {200: {"content": {MEDIA_TYPES[suffix]: {}},
                  "description": "the clip (206 with a Range header: the part asked for)"}}


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


def _clip(event_id: int, suffix: str, service: Service) -> FileResponse:
    path = service.store.clip_path(event_id)
    if path is None or path.suffix != suffix:
        raise MissingClip(f"event {event_id} has no clip{suffix}")
    # FileResponse answers Range requests (206, Accept-Ranges): the browser's player seeks.
    return FileResponse(path, media_type=MEDIA_TYPES[suffix],
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{event_id}/clip.webm", response_class=FileResponse,
            responses=video(".webm") | responses(MissingClip))
def clip_webm(event_id: EventId, service: ServiceDep) -> FileResponse:
    """The event's video, from its pre-roll to its post-roll (VP9 in WebM), when its camera
    keeps clips in this format: `clip_url` names the one there is."""
    return _clip(event_id, ".webm", service)


@router.get("/{event_id}/clip.mp4", response_class=FileResponse,
            responses=video(".mp4") | responses(MissingClip))
def clip_mp4(event_id: EventId, service: ServiceDep) -> FileResponse:
    """The event's video as H.264 in MP4, when its camera keeps clips in this format."""
    return _clip(event_id, ".mp4", service)
