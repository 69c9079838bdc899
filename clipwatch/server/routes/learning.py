"""Learning a camera from the service: record its normal footage, train its own model,
switch to it and back.

- /api/cameras/{id}/recordings: start recording a camera (admins);
- /api/recordings: the recordings, stop one, leave out its last seconds, delete one;
- /api/learning: the learning jobs, start one (one at a time), cancel one;
- /api/cameras/{id}/rollback: the camera goes back to the model it ran before.
Activating a learned model is PATCH /api/cameras/{id} with its `model` (routes/cameras.py).
Reads are for every signed-in user (the viewer shows the progress on the tiles); changes
are for admins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.config import CAMERA_ID_PATTERN
from clipwatch.errors import ClipwatchError
from clipwatch.server.auth import Admin
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import responses
from clipwatch.server.learning import NAME_PATTERN, LearningConflict, UnknownJob
from clipwatch.server.models import ModelRefused
from clipwatch.server.recordings import RecordingConflict, RecordingQuota, UnknownRecording
from clipwatch.server.schemas import CameraView, LearningJobView, RecordingView
from clipwatch.server.service import CameraNotRunning, NoPreviousModel, UnknownCamera
from clipwatch.stream.recording import RecordingError

router = APIRouter(tags=["learning"])
CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="the camera's id")]
RecordingId = Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,120}$",
                                  description="the recording's id")]
JobId = Annotated[str, Path(pattern=r"^[a-f0-9]{12}$", description="the job's id")]


class RecordingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: float = Field(gt=0, le=24 * 60, description="minutes of footage to keep")
    spread_hours: float | None = Field(
        None, gt=0, le=7 * 24, description="spread over this many hours, a minute at a time "
                                          "(busy and quiet hours both); null: at once")
    keep_alerts: bool = Field(False, description="keep frames while an alert is open too (the "
                                                 "camera's model does not know this scene "
                                                 "yet, so its alerts say nothing)")


class LeaveOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(60.0, gt=0, le=24 * 3600,
                           description="the last this many seconds were not normal")


class LearningRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str = Field(pattern=CAMERA_ID_PATTERN, description="the camera it is for")
    recording: str = Field(pattern=r"^[a-z0-9_-]{1,120}$", description="footage to learn from")
    name: str = Field(pattern=f"^{NAME_PATTERN}$", description="the model's file stem")
    from_model: str | None = Field(None, alias="from", min_length=1, max_length=1024,
                                   description="the model to start from, in the model folder "
                                               "(default: model.path)")
    scratch: bool = Field(False, description="train from random weights instead")
    train_minutes: float = Field(20.0, gt=0, le=24 * 60, description="training time budget")
    steps: int | None = Field(None, ge=1, le=1_000_000,
                              description="at most this many steps (default: the budget's)")


@router.post("/api/cameras/{camera_id}/recordings", status_code=201,
             responses=responses(UnknownCamera, CameraNotRunning, RecordingConflict,
                                 RecordingQuota))
def start_recording(request: RecordingRequest, camera_id: CameraId, service: ServiceDep,
                    _: Admin) -> RecordingView:
    """Record the camera's scored frames as normal footage (frames while an alert is open
    are left out, unless `keep_alerts`). 409 while it records already; 507 once the recordings fill
    storage.max_recording_mb."""
    return RecordingView.model_validate(
        service.start_recording(camera_id, request.minutes, request.spread_hours,
                                request.keep_alerts))


@router.get("/api/recordings")
def list_recordings(service: ServiceDep) -> list[RecordingView]:
    return [RecordingView.model_validate(v) for v in service.recordings.views()]


@router.get("/api/recordings/{recording_id}", responses=responses(UnknownRecording))
def get_recording(recording_id: RecordingId, service: ServiceDep) -> RecordingView:
    return RecordingView.model_validate(service.recordings.view(recording_id))


@router.post("/api/recordings/{recording_id}/stop", responses=responses(UnknownRecording))
def stop_recording(recording_id: RecordingId, service: ServiceDep, _: Admin) -> RecordingView:
    """Stop now, keeping what was recorded."""
    return RecordingView.model_validate(service.recordings.end(recording_id))


@router.post("/api/recordings/{recording_id}/leave-out", responses=responses(UnknownRecording))
def leave_out(request: LeaveOut, recording_id: RecordingId, service: ServiceDep,
              _: Admin) -> RecordingView:
    """The last `seconds` (before now, or before a finished recording's end) were not
    normal: the chunks holding them are removed."""
    return RecordingView.model_validate(service.recordings.leave_out(recording_id,
                                                                     request.seconds))


@router.delete("/api/recordings/{recording_id}", status_code=204,
               responses=responses(UnknownRecording, RecordingConflict))
def delete_recording(recording_id: RecordingId, service: ServiceDep, _: Admin) -> None:
    service.recordings.remove(recording_id, service.learning.in_use)


@router.get("/api/learning")
def list_jobs(service: ServiceDep) -> list[LearningJobView]:
    return [LearningJobView.model_validate(v) for v in service.learning.views()]


@router.get("/api/learning/{job_id}", responses=responses(UnknownJob))
def get_job(job_id: JobId, service: ServiceDep) -> LearningJobView:
    return LearningJobView.model_validate(service.learning.view(job_id))


@router.post("/api/learning", status_code=201,
             responses=responses(UnknownCamera, UnknownRecording, LearningConflict,
                                 RecordingError, ModelRefused, ClipwatchError))
def start_job(request: LearningRequest, service: ServiceDep, _: Admin) -> LearningJobView:
    """Learn a model for the camera from a finished recording, in the background: fine-tune
    `from` (default model.path) or train from scratch, calibrate and judge on held-out
    footage. One job at a time (409); a recording too short to hold out footage to
    calibrate and judge on is refused (422); so is a name taken in the model folder (409)."""
    return LearningJobView.model_validate(service.start_learning(
        request.camera, request.recording, request.name, request.from_model, request.scratch,
        request.train_minutes, request.steps))


@router.post("/api/learning/{job_id}/cancel", responses=responses(UnknownJob, LearningConflict))
def cancel_job(job_id: JobId, service: ServiceDep, _: Admin) -> LearningJobView:
    """Stop the job and remove what it wrote; the model folder is left as it was."""
    return LearningJobView.model_validate(service.learning.cancel(job_id))


@router.post("/api/cameras/{camera_id}/rollback",
             responses=responses(UnknownCamera, NoPreviousModel, ModelRefused))
def rollback(camera_id: CameraId, service: ServiceDep, _: Admin) -> CameraView:
    """The camera goes back to the model it ran before its last model change (a new clip
    window and warm-up, that model's calibration); a second rollback undoes the first."""
    return CameraView.model_validate(service.replace_camera(service.rollback_camera(camera_id)))
