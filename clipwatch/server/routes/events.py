"""/api/events: alert history with filters and paging, acknowledge, snapshot and heatmap."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.server.auth import Viewer
from clipwatch.server.deps import ServiceDep
from clipwatch.server.event_store import StoreError, event_json
from clipwatch.server.service import Service

router = APIRouter(prefix="/api/events", tags=["events"])


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000, description="what the operator saw or did")


@router.get("")
def list_events(
    service: ServiceDep,
    _: Viewer,
    camera: str | None = Query(None, max_length=32),
    since: float | None = Query(None, description="started at or after (epoch seconds)"),
    until: float | None = Query(None, description="started before (epoch seconds)"),
    acknowledged: bool | None = None,
    state: Literal["open", "closed"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> dict[str, Any]:
    items, total = service.store.list(camera, since, until, acknowledged, state, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{event_id}")
def get_event(event_id: int, service: ServiceDep, _: Viewer) -> dict[str, Any]:
    row = service.store.get(event_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no event {event_id}")
    return event_json(row)


@router.post("/{event_id}/ack")
def acknowledge(event_id: int, body: Acknowledgement, service: ServiceDep,
                _: Viewer) -> dict[str, Any]:
    try:
        result = service.store.acknowledge(event_id, body.note.strip())
    except StoreError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    if result is None:
        raise HTTPException(status_code=404, detail=f"no event {event_id}")
    seq, event = result
    service.hub.publish({"type": "alert", "seq": seq, "event": "ack", "alert": event})
    return event


def _image(event_id: int, name: str, service: Service) -> FileResponse:
    path = service.store.image_path(event_id, name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"event {event_id} has no {name}")
    return FileResponse(path, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=60"})


@router.get("/{event_id}/snapshot.jpg")
def snapshot(event_id: int, service: ServiceDep, _: Viewer) -> FileResponse:
    return _image(event_id, "snapshot", service)


@router.get("/{event_id}/heatmap.jpg")
def heatmap(event_id: int, service: ServiceDep, _: Viewer) -> FileResponse:
    return _image(event_id, "heatmap", service)
