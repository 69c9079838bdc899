"""/api/cameras: list, add, change and remove cameras at run time, with validation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clipwatch.config import (
    CAMERA_ID_PATTERN,
    MAX_STRIDE,
    CameraCalibration,
    CameraConfig,
    one_line,
)
from clipwatch.errors import ClipwatchError
from clipwatch.server.auth import Admin, Viewer
from clipwatch.server.deps import ServiceDep
from clipwatch.server.service import CameraConflict, Service, UnknownCamera
from clipwatch.stream.sources import source_kind

router = APIRouter(prefix="/api/cameras", tags=["cameras"])
CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="the camera's id")]


class CameraPatch(BaseModel):
    """Fields to change; those left out keep their value. The id cannot change."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=80)
    source: str | None = Field(None, min_length=1, max_length=2048)
    stride: int | None = Field(None, ge=1, le=MAX_STRIDE)
    threshold: float | None = Field(None, ge=-10, le=1)
    enabled: bool | None = None
    loop: bool | None = None
    fps: float | None = Field(None, gt=0, le=240)
    baseline_frames: int | None = Field(None, ge=20, le=1_000_000)
    calibration: CameraCalibration | None = None


def _check_source(camera: CameraConfig, service: Service) -> None:
    kind = source_kind(camera.source)
    allowed = service.config.server.allowed_sources
    if kind not in allowed:
        raise HTTPException(status_code=422, detail=f"source: {kind!r} sources are not "
                            f"allowed here (allowed: {', '.join(allowed)})")


def _not_found(exc: UnknownCamera) -> HTTPException:
    return HTTPException(status_code=404, detail=str(exc))


@router.get("")
def list_cameras(service: ServiceDep, _: Viewer) -> list[dict[str, Any]]:
    return service.camera_views()


@router.post("", status_code=201)
def add_camera(camera: CameraConfig, service: ServiceDep, _: Admin) -> dict[str, Any]:
    _check_source(camera, service)
    try:
        return service.add_camera(camera)
    except CameraConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except ClipwatchError as exc:
        raise HTTPException(status_code=500, detail=str(exc)) from None


@router.get("/{camera_id}")
def get_camera(camera_id: CameraId, service: ServiceDep, _: Viewer) -> dict[str, Any]:
    try:
        return service.camera_view(camera_id)
    except UnknownCamera as exc:
        raise _not_found(exc) from None


@router.patch("/{camera_id}")
def change_camera(patch: CameraPatch, camera_id: CameraId, service: ServiceDep,
                  _: Admin) -> dict[str, Any]:
    try:
        current = service.camera(camera_id)
        # Fields sent as null reset to their default (threshold: the calibration's).
        merged = current.model_dump() | patch.model_dump(exclude_unset=True)
        try:
            camera = CameraConfig.model_validate(merged)
        except ValidationError as exc:
            raise HTTPException(status_code=422, detail=one_line(exc)) from None
        _check_source(camera, service)
        return service.replace_camera(camera)
    except UnknownCamera as exc:
        raise _not_found(exc) from None


@router.delete("/{camera_id}", status_code=204)
def remove_camera(camera_id: CameraId, service: ServiceDep, _: Admin) -> None:
    try:
        service.remove_camera(camera_id)
    except UnknownCamera as exc:
        raise _not_found(exc) from None
