"""What the REST API answers: one pydantic model per response body, shared with the websocket.

Routes declare these as their return types, so FastAPI checks every answer against them and
the OpenAPI page (/docs) shows them. A camera and an event look the same in a REST answer as
in a websocket message (messages.py reuses `CameraView` and `Event`). The models forbid
unknown fields: a field added to what the service returns must be added here too, or the
answer fails loudly in the tests instead of drifting from the documented contract.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clipwatch.config import AlertConfig, CameraConfig, SinkSettings

CameraState = Literal["connecting", "learning", "live", "lost", "ended", "stopped"]
Role = Literal["viewer", "admin"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Answer):
    """Every refusal (4xx, 5xx) has this shape, as FastAPI's own errors do (422 from request
    validation carries a list of problems in `detail` instead)."""

    detail: str = Field(description="what is wrong, in one line")


# -- cameras -----------------------------------------------------------------------------------


class CameraStatusView(_Answer):
    state: CameraState = Field(description="connecting, learning (its baseline), live, lost, "
                                           "ended (a file or folder played out), stopped "
                                           "(disabled)")
    reason: str | None = Field(description="why, for a person: an error, 'scoring 5.0 of 25.0 "
                                           "frames/s', the baseline's progress. A failure "
                                           "reads 'cannot open the source' for viewers; admins "
                                           "get the error itself (a path, a server's answer)")
    since: float = Field(description="when it entered this state (epoch seconds)")


class ActiveCalibration(_Answer):
    """The causal-score constants in force: the camera's own, learned, or the model's."""

    e_lo: float = Field(description="e(t) that scores regularity 1")
    e_hi: float = Field(description="the scale of e(t) above e_lo")
    threshold: float = Field(description="regularity below this is abnormal")
    data: str = Field(description="where the calibration came from")


class CameraView(CameraConfig):
    """A camera as the API and the websocket show it: its config (a password in the source is
    masked) and its live state and counters."""

    status: CameraStatusView
    effective_threshold: float | None = Field(
        description="the alert threshold in force: the camera's own, else its calibration's "
                    "(None until a baseline is learned)")
    fps_in: float | None = Field(description="frames/s arriving from the source")
    sampled_fps: float | None = Field(description="frames/s kept for scoring when the camera "
                                                  "is sampled down (None: every frame)")
    frames_in: int = Field(description="frames read, those sampled out or dropped too")
    frames_scored: int
    frames_dropped: int = Field(description="frames the full queue dropped (scoring fell "
                                            "behind)")
    frames_sampled_out: int = Field(description="frames left out evenly to keep up")
    regularity: float | None = Field(description="the latest causal regularity (None while "
                                                 "learning or before the first score)")
    active_calibration: ActiveCalibration | None
    frame_size: tuple[int, int] | None = Field(
        None, description="(width, height) of the frames as the service reads them, the "
                          "coordinates of masks and zones; None before the first frame")


# -- events ------------------------------------------------------------------------------------


class Event(_Answer):
    """One alert: from its start to its end, with its worst frame."""

    id: int
    camera: str
    state: Literal["open", "closed"]
    started_at: float = Field(description="epoch seconds")
    ended_at: float | None
    updated_at: float
    start_frame: int = Field(description="the camera's frame index where it opened")
    lowest_regularity: float
    worst_frame: int = Field(description="the frame of the lowest regularity")
    worst_at: float
    threshold: float = Field(description="the threshold it crossed")
    frames: int = Field(description="frames it has lasted")
    acknowledged: bool
    ack_note: str | None
    acknowledged_at: float | None
    snapshot_url: str | None = Field(description="the worst frame (JPEG); None once retention "
                                                 "deleted it")
    heatmap_url: str | None = Field(description="the worst frame with its heatmap (JPEG)")
    zone: str | None = Field(None, description="the camera zone that raised it (None: the "
                                               "whole frame)")
    model: str | None = Field(None, description="the model file the camera ran")
    clip_url: str | None = Field(None, description="video of the event from its pre-roll to "
                                                   "its post-roll; None until written or once "
                                                   "retention deleted it")


class EventPage(_Answer):
    items: list[Event] = Field(description="newest first")
    total: int = Field(description="events matching the filters, over all pages")
    limit: int
    offset: int


# -- health ------------------------------------------------------------------------------------


class Health(_Answer):
    status: Literal["ok"]
    version: str


class Readiness(_Answer):
    """503 with the same body when not ready. An anonymous caller (a health check) gets
    `ready` alone when auth is configured; the details are for signed-in callers."""

    ready: bool = Field(description="started, scoring, and the store can be written")
    model: str | None = Field(None, description="the model file's name")
    variant: str | None = Field(None, description="the inference variant configured "
                                                  "(model.variant)")
    models_loaded: list[str] | None = Field(None, description="the model files loaded: the "
                                                              "default and cameras' own")
    inference_running: bool | None = None
    inference_error: str | None = Field(None, description="the inference thread's last "
                                                          "failure")
    store_writable: bool | None = Field(None, description="the database and the snapshot "
                                                          "folder can be written")
    store_error: str | None = Field(None, description="why the store cannot be written: the "
                                                      "last write's error, or the snapshot "
                                                      "folder's")
    alerts_waiting_for_store: int | None = Field(None, description="alert messages held until "
                                                                   "the store takes them")
    images_not_stored: int | None = Field(None, description="snapshot and heatmap writes the "
                                                            "snapshot folder refused since "
                                                            "the start (their alerts were "
                                                            "stored without them)")
    cameras: dict[str, CameraState] | None = Field(None, description="each running camera's "
                                                                     "state")
    cluster: str | None = Field(None, description="cluster mode: the Ray cluster's address")
    camera_workers: int | None = Field(None, description="cluster mode: camera workers")
    workers_unreachable: list[str] | None = Field(
        None, description="cluster mode: camera workers that do not answer (restarting)")


# -- models ------------------------------------------------------------------------------------


class ModelEntry(_Answer):
    """A model file in the model folder, with its sidecar's summary."""

    name: str = Field(description="the file name, as a camera's `model` may give it")
    path: str
    default: bool = Field(description="the service-wide model (model.path)")
    loaded: bool = Field(description="loaded now (a camera or the default runs it)")
    variant: str | None = Field(description="the inference variant it runs with, when loaded")
    cameras: list[str] = Field(description="the cameras that run it")
    size_bytes: int
    scene: str | None = Field(description="what footage it learned (its provenance)")
    calibration: dict[str, Any] | None = Field(description="its causal-score calibration")
    metrics: dict[str, Any] | None = Field(description="its measured figures")
    provenance: dict[str, Any] | None
    error: str | None = Field(description="why its sidecar cannot be used (then no camera "
                                          "can be given it)")


# -- session and admin -------------------------------------------------------------------------


class Account(_Answer):
    """An operator login (never its password hash)."""

    name: str
    role: Role


class Me(Account):
    auth: bool = Field(description="whether auth is configured (off: every caller is admin)")


class Settings(_Answer):
    alerts: AlertConfig


# -- alert sinks -------------------------------------------------------------------------------


class SinkStatusView(_Answer):
    """Delivery to a sink, its counts since the service started."""

    state: Literal["ok", "failing", "starting", "disabled", "stopped"] = Field(
        description="ok (delivering or caught up), failing (tries fail; messages wait in "
                    "order), starting, disabled, stopped (the service is not running)")
    connected: bool | None = Field(description="MQTT: connected to the broker now (webhooks: "
                                               "None)")
    last_seq: int | None = Field(description="the alert message the sink has dealt with last "
                                             "(delivered, filtered out or skipped)")
    backlog: int = Field(description="alert messages after it, waiting for the sink")
    delivered: int = Field(description="messages the receiver accepted")
    failures: int = Field(description="failed tries (each is retried)")
    skipped: int = Field(description="messages never delivered: the sink was further behind "
                                     "than its bound (max_backlog, max_age_hours)")
    filtered: int = Field(description="messages the sink's filters left out")
    last_error: str | None = Field(description="why the last failed try failed")
    last_error_at: float | None
    last_success_at: float | None
    failing_since: float | None = Field(description="when the current run of failures began "
                                                    "(None: not failing)")


class SinkView(SinkSettings):
    """An alert sink as the API shows it: its settings (a password in the URL masked, never
    its secret) and its delivery status."""

    signed: bool = Field(description="whether its messages are signed (webhooks: always)")
    status: SinkStatusView


class SinkTestResult(_Answer):
    delivered: bool = Field(description="whether the receiver accepted the test message")
    detail: str = Field(description="what happened: the answer, or why it failed")
    seconds: float = Field(description="how long it took")


# -- learning a camera -------------------------------------------------------------------------


class RecordingView(_Answer):
    """A camera's recorded normal footage (server/recordings.py)."""

    id: str
    camera: str
    state: Literal["recording", "waiting", "done", "stopped", "full", "failed"] = Field(
        description="waiting: a schedule between its slots; full: the quota was reached")
    minutes: float = Field(description="footage asked for")
    spread_hours: float | None = Field(description="spread over this many hours (a schedule)")
    fps: float = Field(description="the frame rate the footage is stored at")
    keep_alerts: bool = Field(description="frames while an alert was open are kept too")
    seconds_kept: float
    progress: float = Field(description="share of the footage asked for that is kept (0-1)")
    frames: int = Field(description="frames in whole chunks on disk")
    chunks: int
    bytes: int
    left_out: int = Field(description="frames not kept: alerts open, marked by the operator, "
                                      "runs too short for a chunk")
    next_at: float | None = Field(description="when a waiting schedule records again")
    created_at: float
    finished_at: float | None
    error: str | None


class LearningJobView(_Answer):
    """A learning job (server/learning.py): where it stands and, once done, its figures."""

    id: str
    camera: str
    recording: str
    name: str = Field(description="the model's file stem in the model folder")
    from_model: str = Field(description="the model fine-tuned (scratch: compared with)")
    scratch: bool
    train_minutes: float
    state: Literal["running", "done", "failed", "cancelled"]
    created_at: float
    finished_at: float | None
    model: str | None = Field(description="the model file made, once done")
    error: str | None
    progress: dict[str, Any] | None = Field(
        description="while running: stage (record, train, export, calibrate, judge, "
                    "validate), step, steps, loss, clips_per_s, eta_s (seconds left)")
    result: dict[str, Any] | None = Field(
        description="once done: false_alarm_rate (per frame, on held-out footage), "
                    "alerts_per_hour, threshold, before (the model it started from, on the "
                    "same footage), validation_score, steps, train_seconds, seconds")
    launches: int = Field(description="1, plus one per restart it resumed after")
    yielding: bool = Field(description="paused now: a live camera is sampled down (the "
                                       "training gives the cameras their frame rate first)")
    yielded_seconds: float | None = Field(description="the running job's time paused for "
                                                      "the live cameras in this run")
