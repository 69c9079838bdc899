"""/api/cameras: list, add, change and remove cameras at run time, with validation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.config import CAMERA_ID_PATTERN, MAX_STRIDE, CameraCalibration, CameraConfig
from clipwatch.errors import ClipwatchError
from clipwatch.server.auth import Admin, Viewer
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import responses, validated
from clipwatch.server.schemas import CameraView
from clipwatch.server.service import CameraConflict, CameraLimit, UnknownCamera
from clipwatch.server.source_policy import SourceRefused, check_api_source

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


@router.get("")
def list_cameras(service: ServiceDep, who: Viewer) -> list[CameraView]:
    return [CameraView.model_validate(view) for view in service.camera_views(who.is_admin)]


@router.post("", status_code=201,
             responses=responses(CameraConflict, CameraLimit, SourceRefused, ClipwatchError))
def add_camera(camera: CameraConfig, service: ServiceDep, _: Admin) -> CameraView:
    """Add a camera. Its source is held to the server's policy (server.allowed_sources,
    allowed_dirs, denied_networks; never a FIFO or a device): 422 otherwise; 409 beyond
    server.max_cameras."""
    check_api_source(camera.source, service.config.server)
    return CameraView.model_validate(service.add_camera(camera, from_api=True))


@router.get("/{camera_id}", responses=responses(UnknownCamera))
def get_camera(camera_id: CameraId, service: ServiceDep, who: Viewer) -> CameraView:
    return CameraView.model_validate(service.camera_view(camera_id, who.is_admin))


@router.patch("/{camera_id}", responses=responses(UnknownCamera, SourceRefused))
def change_camera(patch: CameraPatch, camera_id: CameraId, service: ServiceDep,
                  _: Admin) -> CameraView:
    current = service.camera(camera_id)
    # Fields sent as null reset to their default (threshold: the calibration's).
    camera = validated(CameraConfig,
                       current.model_dump() | patch.model_dump(exclude_unset=True))
    new_source = camera.source != current.source  # a rename keeps a config camera's source
    if new_source:
        check_api_source(camera.source, service.config.server)
    return CameraView.model_validate(service.replace_camera(camera, from_api=new_source))


@router.delete("/{camera_id}", status_code=204, responses=responses(UnknownCamera))
def remove_camera(camera_id: CameraId, service: ServiceDep, _: Admin) -> None:
    service.remove_camera(camera_id)
