"""Domain errors of the API and the one handler that turns them into HTTP answers.

Routes and the service raise what went wrong (`UnknownCamera`, `UnknownEvent`, `LastAdmin`,
...); `STATUS` says which HTTP status each gets, and `handle` (registered by `create_app` for
every `ClipwatchError`) answers with it and FastAPI's usual body, `{"detail": "<message>"}`.
A class not in the table takes its nearest ancestor's status; an unexpected `ClipwatchError`
is a 500 that still says what failed. Auth refusals (401, 403) stay HTTPExceptions: they are
about the request, not the domain.

`invalid_request` answers a body or parameter that fails validation (422) with FastAPI's
usual list of errors less each error's `input`: a refused body is never echoed (it may hold
a password, or a camera URL with one).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from clipwatch.config import one_line
from clipwatch.errors import ClipwatchError
from clipwatch.server.event_store import StoreError
from clipwatch.server.learning import LearningConflict, UnknownJob
from clipwatch.server.models import ModelRefused
from clipwatch.server.recordings import RecordingConflict, RecordingQuota, UnknownRecording
from clipwatch.server.schemas import ErrorBody
from clipwatch.server.service import (
    CameraConflict,
    CameraLimit,
    CameraNotRunning,
    NoPreviousModel,
    NotInClusterMode,
    UnknownCamera,
)
from clipwatch.server.sinks import SinkConflict, SinkDisabled, SinkRefused, UnknownSink
from clipwatch.server.source_policy import SourceRefused
from clipwatch.stream.recording import RecordingError

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class UnknownEvent(ClipwatchError):
    """No event has that id."""


class MissingImage(ClipwatchError):
    """The event has no snapshot or heatmap (never written, or deleted by retention)."""


class MissingClip(ClipwatchError):
    """The event has no clip in that format (the camera keeps none, it is still being
    recorded, or retention deleted it)."""


class UnknownUser(ClipwatchError):
    """No operator login has that name."""


class UserExists(ClipwatchError):
    """An operator login with that name already exists."""


class LastAdmin(ClipwatchError):
    """The change would leave no admin (and no admin token)."""


class InvalidChange(ClipwatchError):
    """A change that is well-formed but not valid once applied (merged with what it
    changes, or checked against the server's settings)."""


class FrameSizeUnknown(ClipwatchError):
    """No frame from the camera yet: the frame size that polygons must fit is unknown."""


STATUS: dict[type[ClipwatchError], int] = {
    UnknownCamera: 404,
    UnknownEvent: 404,
    MissingImage: 404,
    MissingClip: 404,
    UnknownUser: 404,
    UnknownSink: 404,
    CameraConflict: 409,
    CameraLimit: 409,
    UserExists: 409,
    LastAdmin: 409,
    SinkConflict: 409,
    SinkDisabled: 409,
    InvalidChange: 422,
    FrameSizeUnknown: 409,
    SourceRefused: 422,
    SinkRefused: 422,
    ModelRefused: 422,
    UnknownRecording: 404,
    UnknownJob: 404,
    RecordingConflict: 409,
    LearningConflict: 409,
    CameraNotRunning: 409,
    NoPreviousModel: 409,
    NotInClusterMode: 409,
    RecordingError: 422,  # a recording too short to calibrate, unreadable
    RecordingQuota: 507,  # storage.max_recording_mb reached: delete a recording
    StoreError: 503,  # the disk is full or gone: retry later
    ClipwatchError: 500,
}


def status_of(exc: ClipwatchError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def handle(connection: HTTPConnection, exc: Exception) -> JSONResponse | None:
    """The app's handler for every ClipwatchError (registered by `create_app`)."""
    assert isinstance(exc, ClipwatchError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s failed: %s", connection.url.path, exc)
    if isinstance(connection, WebSocket):  # no HTTP answer to give: close it
        await connection.close(code=1011, reason=str(exc).encode()[:120].decode(errors="ignore"))
        return None
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def invalid_request(connection: HTTPConnection, exc: Exception) -> JSONResponse:
    """The app's handler for RequestValidationError: where and why, never what was sent."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def responses(*classes: type[ClipwatchError]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` entry of a route that may raise these."""
    documented: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        status = STATUS[cls]
        entry = documented.setdefault(status, {"model": ErrorBody, "description": ""})
        entry["description"] = "; ".join(filter(None, (entry["description"],
                                                       (cls.__doc__ or cls.__name__).strip())))
    return documented


def validated(model: type[M], data: dict[str, Any], where: str = "") -> M:
    """`data` as a `model`, or InvalidChange naming the first problem ('alerts.open_frames:
    ...'): for a change merged with the current value, which the request body alone could
    not validate."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidChange(f"{where}{one_line(exc)}") from None
