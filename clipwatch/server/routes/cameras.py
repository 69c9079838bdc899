"""/api/cameras: list, add, change and remove cameras at run time, with validation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from clipwatch.config import (
    CAMERA_ID_PATTERN,
    MAX_STRIDE,
    CameraCalibration,
    CameraConfig,
    CameraZone,
    ClipConfig,
    Polygon,
    unique_zone_names,
)
from clipwatch.errors import ClipwatchError
from clipwatch.model.regions import (
    MAX_MASKS,
    MAX_ZONES,
    ZoneShape,
    outside_problem,
    region_weights,
)
from clipwatch.server.auth import Admin, Viewer
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import FrameSizeUnknown, InvalidChange, responses, validated
from clipwatch.server.models import ModelRefused
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
    clip: ClipConfig | None = Field(None, description="event clips (null: none)")
    model: str | None = Field(None, min_length=1, max_length=1024,
                              description="a model in the model folder ('gate.onnx'); null: "
                                          "the service-wide model")


def api_model(camera: CameraConfig, service) -> CameraConfig:
    """A camera from the API may only name a model inside the model folder (422 otherwise):
    a request must not make the service open any file it likes."""
    if camera.model is None:
        return camera
    return camera.model_copy(update={"model": service.models.resolve_api_path(str(camera.model))})


@router.get("")
def list_cameras(service: ServiceDep, who: Viewer) -> list[CameraView]:
    return [CameraView.model_validate(view) for view in service.camera_views(who.is_admin)]


@router.post("", status_code=201,
             responses=responses(CameraConflict, CameraLimit, SourceRefused, ModelRefused,
                                 ClipwatchError))
def add_camera(camera: CameraConfig, service: ServiceDep, _: Admin) -> CameraView:
    """Add a camera. Its source is held to the server's policy (server.allowed_sources,
    allowed_dirs, denied_networks; never a FIFO or a device): 422 otherwise; 409 beyond
    server.max_cameras. Its `model`, if given, must be in the model folder and load (422)."""
    check_api_source(camera.source, service.config.server)
    # A new camera has no model history (a rollback must not open a file a request named).
    camera = api_model(camera, service).model_copy(update={"previous_model": None})
    return CameraView.model_validate(service.add_camera(camera, from_api=True))


@router.get("/{camera_id}", responses=responses(UnknownCamera))
def get_camera(camera_id: CameraId, service: ServiceDep, who: Viewer) -> CameraView:
    return CameraView.model_validate(service.camera_view(camera_id, who.is_admin))


@router.patch("/{camera_id}", responses=responses(UnknownCamera, SourceRefused, ModelRefused))
def change_camera(patch: CameraPatch, camera_id: CameraId, service: ServiceDep,
                  _: Admin) -> CameraView:
    """Change a camera; it restarts with the new settings. A new `model` takes effect at
    once (a new clip window and warm-up; its alerts stay in the history) with the new
    model's calibration unless the same request sets the camera's own; one that is not in
    the model folder or fails its sidecar check is refused (422) and the camera keeps its
    model."""
    current = service.camera(camera_id)
    # Fields sent as null reset to their default (threshold: the calibration's).
    camera = validated(CameraConfig,
                       current.model_dump() | patch.model_dump(exclude_unset=True))
    new_source = camera.source != current.source  # a rename keeps a config camera's source
    if new_source:
        check_api_source(camera.source, service.config.server)
    if "model" in patch.model_fields_set:
        camera = api_model(camera, service)
        if camera.model != current.model and "calibration" not in patch.model_fields_set:
            # Constants of the old model's error scale mean nothing to another model: the
            # camera takes the new model's calibration (or its learned baseline).
            camera = camera.model_copy(update={"calibration": None})
    return CameraView.model_validate(service.replace_camera(camera, from_api=new_source))


@router.delete("/{camera_id}", status_code=204, responses=responses(UnknownCamera))
def remove_camera(camera_id: CameraId, service: ServiceDep, _: Admin) -> None:
    service.remove_camera(camera_id)


class CameraRegions(BaseModel):
    """A camera's masks and zones, replacing those it has (empty lists remove them)."""

    model_config = ConfigDict(extra="forbid")
    masks: list[Polygon] = Field(default_factory=list, max_length=MAX_MASKS,
                                 description="polygons counted in neither the score nor the "
                                             "heatmap: [[[x, y], ...], ...], frame pixels")
    zones: list[CameraZone] = Field(default_factory=list, max_length=MAX_ZONES,
                                    description="named polygons with their own score, "
                                                "threshold and alerts")

    @field_validator("zones")
    @classmethod
    def _unique(cls, zones: list[CameraZone]) -> list[CameraZone]:
        return unique_zone_names(zones)


def check_coverage(regions: CameraRegions, frame_size: tuple[int, int], input_size: int) -> None:
    """Refuse masks that leave nothing to score, and zones with no pixel left (422)."""
    weights = region_weights(regions.masks,
                             [ZoneShape(z.name, tuple(z.polygon)) for z in regions.zones],
                             frame_size, input_size)
    if weights.keep is not None and not weights.keep_scale:
        raise InvalidChange("masks: they cover the whole frame, leaving nothing to score")
    for i, (zone, scale) in enumerate(zip(regions.zones, weights.zone_scales, strict=True)):
        if not scale:
            raise InvalidChange(f"zones.{i} ({zone.name}): no pixel of it is scored (it lies "
                                "under the masks, or is smaller than a pixel of the model's "
                                "input)")


@router.put("/{camera_id}/zones",
            responses=responses(UnknownCamera, FrameSizeUnknown, InvalidChange))
def set_regions(regions: CameraRegions, camera_id: CameraId, service: ServiceDep,
                _: Admin) -> CameraView:
    """Replace a camera's masks and zones, in its frame's pixel coordinates (`frame_size` in
    its view). A polygon with fewer than 3 points, crossing edges or points outside the
    frame is refused (422); the frame size is known once the camera has delivered a frame
    in this run (409 before). The camera restarts with them at once (a new clip window and
    warm-up; with `baseline_frames`, a new baseline) and they are written to the config."""
    current = service.camera(camera_id)
    if regions.masks or regions.zones:
        size = service.frame_size(camera_id)
        if size is None:
            raise FrameSizeUnknown(f"camera {camera_id!r} has delivered no frame yet, so its "
                                   "frame size is unknown; set masks and zones once it shows "
                                   "video")
        shapes = [(f"masks.{i}", m) for i, m in enumerate(regions.masks)] + \
            [(f"zones.{i} ({z.name})", z.polygon) for i, z in enumerate(regions.zones)]
        for where, polygon in shapes:
            problem = outside_problem(polygon, size)
            if problem:
                raise InvalidChange(f"{where}: {problem}")
        check_coverage(regions, size, service.input_size(camera_id))
    camera = validated(CameraConfig, current.model_dump() | regions.model_dump())
    return CameraView.model_validate(service.replace_camera(camera))
