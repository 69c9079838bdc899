"""/api/cameras: list, add, change and remove cameras at run time, with validation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.config import CAMERA_ID_PATTERN, MAX_STRIDE, CameraCalibration, CameraConfig
from clipwatch.errors import ClipwatchError
from clipwatch.server.auth import Admin
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import InvalidChange, responses, validated
from clipwatch.server.schemas import CameraView
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
        raise InvalidChange(f"source: {kind!r} sources are not allowed here "
                            f"(allowed: {', '.join(allowed)})")


@router.get("")
def list_cameras(service: ServiceDep) -> list[CameraView]:
    return [CameraView.model_validate(view) for view in service.camera_views()]


@router.post("", status_code=201, responses=responses(CameraConflict, ClipwatchError))
def add_camera(camera: CameraConfig, service: ServiceDep, _: Admin) -> CameraView:
    _check_source(camera, service)
    return CameraView.model_validate(service.add_camera(camera))


@router.get("/{camera_id}", responses=responses(UnknownCamera))
def get_camera(camera_id: CameraId, service: ServiceDep) -> CameraView:
    return CameraView.model_validate(service.camera_view(camera_id))


@router.patch("/{camera_id}", responses=responses(UnknownCamera))
def change_camera(patch: CameraPatch, camera_id: CameraId, service: ServiceDep,
                  _: Admin) -> CameraView:
    current = service.camera(camera_id)
    # Fields sent as null reset to their default (threshold: the calibration's).
    camera = validated(CameraConfig,
                       current.model_dump() | patch.model_dump(exclude_unset=True))
    _check_source(camera, service)
    return CameraView.model_validate(service.replace_camera(camera))


@router.delete("/{camera_id}", status_code=204, responses=responses(UnknownCamera))
def remove_camera(camera_id: CameraId, service: ServiceDep, _: Admin) -> None:
    service.remove_camera(camera_id)
