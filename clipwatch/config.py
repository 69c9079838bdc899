"""The root config of the live service (pydantic), loaded once from YAML and passed down.

One file lists the cameras, the model, where events are stored, the server's bind and the
alert rules. Every field is described; unknown keys are refused (`extra="forbid"`), so a typo
in a config file is an error at start, not a silently ignored setting. Cameras added, changed
or removed through the REST API are written back to the same file (atomically), so a restart
keeps them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from clipwatch.errors import ClipwatchError
from clipwatch.model.regions import (
    MAX_COORDINATE,
    MAX_MASKS,
    MAX_POINTS,
    MAX_ZONES,
    polygon_problem,
)
from clipwatch.model.variants import VARIANT_HELP, Device, ProductionVariant
from clipwatch.paths import DEFAULT_MODEL, SAMPLE_CLIP
from clipwatch.stream.local_files import special_file_problem

CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
ACCOUNT_NAME_PATTERN = r"^[\w.@-]{1,64}$"  # API token and user names
MAX_STRIDE = 10  # the clip length: a larger stride leaves frames no clip covers


class ConfigError(ClipwatchError):
    """The config file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CameraCalibration(_Strict):
    """A camera's own causal-score constants, when its scene differs from the model's data."""

    e_lo: float = Field(description="smallest e(t) on this camera's normal footage")
    e_hi: float = Field(gt=0, description="largest e(t) on this camera's normal footage")
    threshold: float = Field(ge=-10, le=1, description="regularity below this is abnormal")


def _simple_polygon(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    problem = polygon_problem(points)
    if problem:
        raise ValueError(problem)
    return points


Coordinate = Annotated[int, Field(ge=0, le=MAX_COORDINATE)]
# A polygon in the frame's pixel coordinates (x right, y down, the frames the service reads:
# what the viewer shows), [[x, y], ...]: at least 3 points, simple (no crossing edges).
Polygon = Annotated[list[tuple[Coordinate, Coordinate]], Field(max_length=MAX_POINTS),
                    AfterValidator(_simple_polygon)]
ZONE_NAME_PATTERN = r"^\w([\w .-]{0,38}\w)?$"


class CameraZone(_Strict):
    """A named part of a camera's frame with its own score, threshold and alerts."""

    name: str = Field(pattern=ZONE_NAME_PATTERN,
                      description="named on the alerts it raises: letters, digits, space, "
                                  "'.', '-' and '_', up to 40")
    polygon: Polygon = Field(description="its outline in the frame's pixel coordinates, "
                                         "[[x, y], ...], at least 3 points, edges not crossing")
    threshold: float | None = Field(None, ge=-10, le=1,
                                    description="alert threshold on the zone's regularity "
                                                "(default: the camera's)")


def unique_zone_names(zones: list[CameraZone]) -> list[CameraZone]:
    seen: set[str] = set()
    for zone in zones:
        if zone.name in seen:
            raise ValueError(f"zone name {zone.name!r} is used twice")
        seen.add(zone.name)
    return zones


ClipFormat = Literal["webm", "mp4"]


class ClipConfig(_Strict):
    """A video clip kept with each of the camera's alerts (README: "Event clips")."""

    pre_seconds: float = Field(5.0, ge=0, le=60,
                               description="how long before the alert opened the clip starts "
                                           "(kept in a bounded in-memory ring)")
    post_seconds: float = Field(5.0, ge=0, le=60,
                                description="how long after the alert ended the clip goes on")
    max_seconds: float = Field(120.0, ge=1, le=3600,
                               description="the longest clip: a longer alert keeps its first "
                                           "max_seconds (pre-roll included)")
    heatmap: bool = Field(False, description="blend the heatmap into the clip's frames")
    height: int = Field(480, ge=120, le=2160,
                        description="frames taller than this are scaled down to it (aspect "
                                    "kept; never up): bounds the CPU, memory and disk a clip "
                                    "costs")
    format: ClipFormat = Field(
        "webm", description="webm: VP9 (every Chromium, Firefox, Edge, recent Safari); mp4: "
                            "H.264 (also older Safari and iOS; not Chromium builds without "
                            "proprietary codecs)")
    buffer_mb: float = Field(32.0, gt=0, le=1024,
                             description="memory the pre-roll ring may hold (JPEG frames); a "
                                         "fuller ring shortens the pre-roll")


class CameraConfig(_Strict):
    id: str = Field(pattern=CAMERA_ID_PATTERN,
                    description="short unique id: lower-case letters, digits, - and _")
    name: str = Field("", max_length=80, description="what operators see (default: the id)")
    source: str = Field(min_length=1, max_length=2048,
                        description="rtsp/http URL, video file, folder of frames or webcam index")
    stride: int = Field(1, ge=1, le=MAX_STRIDE,
                        description="frames between clips scored (every frame is still scored)")
    threshold: float | None = Field(None, ge=-10, le=1,
                                    description="alert threshold on regularity (default: the "
                                                "calibration's)")
    enabled: bool = Field(True, description="a disabled camera is kept but not read")
    loop: bool = Field(False, description="replay a file or folder forever (demos, soak tests)")
    fps: float | None = Field(None, gt=0, le=240,
                              description="frame rate override; files and folders are paced to it")
    max_fps: float | None = Field(None, gt=0, le=240,
                                  description="score at most this many frames a second (sampled "
                                              "evenly); scoring capacity may lower it further")
    open_timeout_s: float = Field(10.0, gt=0, le=120,
                                  description="streams: give up opening after this long")
    read_timeout_s: float = Field(5.0, gt=0, le=120,
                                  description="streams: a read blocked this long fails")
    stall_timeout_s: float = Field(5.0, gt=0, le=600,
                                   description="a live camera with no new frame for this long "
                                               "shows as lost (a hung server can block reads)")
    baseline_frames: int | None = Field(
        None, ge=20, le=1_000_000,
        description="learn this camera's calibration from its first N scored frames, taken as "
                    "normal; no alerts until then")
    calibration: CameraCalibration | None = Field(
        None, description="this camera's own calibration (default: the model's)")
    clip: ClipConfig | None = Field(
        None, description="keep a video clip of each alert, from pre_seconds before it to "
                          "post_seconds after it (default: no clips)")
    masks: list[Polygon] = Field(
        default_factory=list, max_length=MAX_MASKS,
        description="polygons whose pixels count toward neither the score nor the heatmap "
                    "(nor any zone), in the frame's pixel coordinates: [[[x, y], ...], ...]")
    zones: list[CameraZone] = Field(
        default_factory=list, max_length=MAX_ZONES,
        description="named polygons, each scored on its own (with its own threshold and "
                    "alerts); the whole frame still raises the camera's alerts")
    model: Path | None = Field(
        None, description="this camera's own ONNX model with its .json sidecar (default: "
                          "model.path); cameras sharing a model are batched together")
    previous_model: str | None = Field(
        None, description="the model it ran before its last change, for a rollback: a path, "
                          "or 'default' for model.path (null: none; set by the service)")

    @field_validator("source")
    @classmethod
    def _source_is_one_line(cls, value: str) -> str:
        if value != value.strip() or any(c in value for c in "\r\n\0"):
            raise ValueError("source must be one line without surrounding spaces")
        return value

    @field_validator("zones")
    @classmethod
    def _unique_zone_names(cls, zones: list[CameraZone]) -> list[CameraZone]:
        return unique_zone_names(zones)

    @model_validator(mode="after")
    def _default_name(self) -> CameraConfig:
        if not self.name:
            self.name = self.id
        return self


class ModelConfig(_Strict):
    path: Path = Field(DEFAULT_MODEL, description="ONNX model with its .json sidecar (the "
                                                   "default of every camera)")
    folder: Path | None = Field(None, description="the models GET /api/models lists and the "
                                                  "only ones the API may give a camera "
                                                  "(default: the folder of `path`)")
    device: Device = Field("auto", description="where ONNX Runtime runs")
    threads: int = Field(0, ge=0, le=256, description="intra-op threads (0: one per core)")
    max_batch: int = Field(8, ge=1, le=64, description="most clips in one inference call")
    variant: ProductionVariant = Field(
        "auto", description="inference variant (clipwatch bench compares them, research "
                            "variants too): " + VARIANT_HELP)


class StorageConfig(_Strict):
    dir: Path = Field(Path("clipwatch-data"),
                      description="event database (events.db), snapshot JPEGs and event "
                                  "clips")
    jpeg_quality: int = Field(85, ge=30, le=100, description="snapshot and live JPEG quality")
    retention_days: float | None = Field(30.0, gt=0, description="delete snapshot and clip "
                                         "files of events older than this (the events stay)")
    max_snapshot_mb: float | None = Field(2048.0, gt=0, description="delete the oldest "
                                          "snapshot files beyond this total size")
    max_clip_mb: float | None = Field(10240.0, gt=0, description="delete the oldest event "
                                      "clips beyond this total size (clips also follow "
                                      "retention_days)")
    max_recording_mb: float | None = Field(
        4096.0, gt=0, description="recorded normal footage (for learning a camera's model) "
                                  "takes at most this much in all; a new recording beyond it "
                                  "is refused, one that reaches it stops")


class LearningConfig(_Strict):
    threads: int = Field(1, ge=1, le=256, description="threads a learning job trains with "
                                                      "(the rest are the live cameras')")
    nice: int = Field(10, ge=0, le=19, description="how much lower the learning job's CPU "
                                                   "priority is than the service's")
    chunk_seconds: float = Field(12.0, gt=0, le=600,
                                 description="recorded footage is kept in chunks this long; "
                                             "chunks spread over a recording are held out to "
                                             "calibrate and judge the model learned")



class ClusterConfig(_Strict):
    """Cluster mode (clipwatch[cluster]): camera workers as Ray actors, inference on Ray Serve
    scorer replicas, events in PostgreSQL. Absent: the embedded single process."""

    address: str = Field("local", min_length=1, max_length=512,
                         description="the Ray cluster: 'local' starts one inside this process "
                                     "(on 127.0.0.1), 'auto' joins the one started on this "
                                     "machine with `ray start`, or a head's host:port")
    database: str = Field(pattern=r"^postgres(ql)?://", max_length=2048,
                          description="PostgreSQL URL of the event store, e.g. "
                                      "postgresql://clipwatch@db-host:5432/clipwatch")
    namespace: str = Field("clipwatch", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                           description="Ray namespace: the site's named workers and scorers")
    scorer_replicas: int = Field(1, ge=1, le=1024,
                                 description="Ray Serve replicas running the model")
    gpus_per_replica: float = Field(0.0, ge=0, le=16,
                                    description="GPUs each scorer replica reserves (0: CPU)")
    cpus_per_replica: float = Field(1.0, ge=0, le=256,
                                    description="CPUs each scorer replica reserves")
    cameras_per_worker: int = Field(8, ge=1, le=256,
                                    description="cameras one camera worker (a Ray actor) owns")
    max_batch: int = Field(16, ge=1, le=256,
                           description="clips a scorer replica runs in one batch, across cameras")
    batch_wait_s: float = Field(0.01, ge=0, le=1,
                                description="how long a replica waits to fill a batch")
    max_restarts: int = Field(-1, ge=-1, le=1_000_000,
                              description="restarts of a dead camera worker (-1: always)")
    start_timeout_s: float = Field(300.0, gt=0, le=3600,
                                   description="how long starting the site may wait for its "
                                               "workers and scorers to be placed")
    worker_cpus: float = Field(1.0, ge=0, le=256,
                               description="CPUs each camera worker reserves (decoding)")
    worker_resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources a camera worker needs (to keep "
                                          "workers on camera nodes, e.g. {camera_node: 1})")
    scorer_resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources a scorer replica needs (to keep "
                                          "replicas on GPU nodes)")

# 'This host' in every spelling, and link-local (169.254.169.254 answers cloud credentials).
DEFAULT_DENIED_NETWORKS = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128",
                           "169.254.0.0/16", "fe80::/10")
SourceKind = Literal["rtsp", "rtsps", "http", "https", "file", "webcam"]


class ServerConfig(_Strict):
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    allowed_sources: list[SourceKind] = Field(
        default_factory=lambda: ["rtsp", "rtsps", "http", "https", "file", "webcam"],
        description="what cameras added through the API may read: URL schemes, 'file' "
                    "(a local video or folder) and 'webcam'")
    max_cameras: int = Field(32, ge=1, le=1000,
                             description="cameras the service holds at most (config file and "
                                         "API; each costs a reader thread and its queue); the "
                                         "API refuses more with 409")
    allowed_dirs: list[Path] | None = Field(
        None, description="files and folders that cameras added through the API may read "
                          "must be inside one of these (symbolic links resolved); unset: "
                          "anywhere. FIFOs and devices are refused everywhere")
    denied_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENIED_NETWORKS),
        description="addresses stream cameras added through the API may not reach (host "
                    "names resolved, every address checked, at the API and at each "
                    "reconnect): by default this host itself (loopback, 0.0.0.0) and "
                    "link-local (cloud metadata services)")
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="exceptions to denied_networks, e.g. 127.0.0.1/32 for an RTSP relay on "
                    "this host; cameras in the config file are never checked")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="web origins (scheme://host[:port]) besides the service's own whose pages "
                    "may open the live websocket, e.g. the viewer's address behind a proxy "
                    "that rewrites Host")
    public_url: str | None = Field(
        None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=512,
        description="the address operators reach the service at, e.g. https://cams.example.com; "
                    "alert sinks then send absolute links to snapshots, heatmaps and clips "
                    "(default: links relative to the service)")

    @field_validator("denied_networks", "allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        import ipaddress

        try:
            return [str(ipaddress.ip_network(n.strip(), strict=False)) for n in networks]
        except ValueError as exc:
            raise ValueError(f"not a network like 10.0.0.0/8 or ::1/128: {exc}") from None

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        import re

        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://cams.example.com")
        return origins


class AlertConfig(_Strict):
    open_frames: int = Field(5, ge=1, le=1000,
                             description="consecutive frames below threshold to open an alert")
    close_frames: int = Field(10, ge=1, le=10000,
                              description="consecutive frames above threshold+hysteresis to "
                                          "close it")
    hysteresis: float = Field(0.02, ge=0, le=1,
                              description="margin above the threshold needed to close")
    merge_seconds: float = Field(3.0, ge=0, le=3600,
                                 description="an alert that closes and opens again within this "
                                             "gap continues as the same alert (0: never merge)")
    update_seconds: float = Field(1.0, gt=0, le=3600,
                                  description="at most one update message per alert this often")


class LiveConfig(_Strict):
    frame_queue: int = Field(20, ge=2, le=1000,
                             description="frames a camera may queue for scoring; more are "
                                         "dropped (oldest first) and counted")
    client_frames: int = Field(2, ge=1, le=100,
                               description="video frames a websocket client may lag behind "
                                           "per camera; older ones are dropped")
    client_scores: int = Field(512, ge=16, le=100_000,
                               description="score messages a client may lag behind")
    client_alerts: int = Field(1000, ge=16, le=100_000,
                               description="alert messages a client may lag behind before it "
                                           "is disconnected (it then resumes from the store)")
    max_frame_pixels: int = Field(1920 * 1080, ge=227 * 227, le=100_000_000,
                                  description="frames with more pixels are downscaled (aspect "
                                              "kept) as they are read, before they are "
                                              "queued: bounds what any source can cost")


SinkKind = Literal["webhook", "mqtt"]
SinkTransition = Literal["start", "update", "end", "ack"]
SINK_SCHEMES = {"webhook": ("http", "https"), "mqtt": ("mqtt", "mqtts")}
MQTT_TOPIC_PATTERN = r"^[^+#/\s]+(/[^+#/\s]+)*$"  # no wildcards, no empty levels


class SinkSettings(_Strict):
    """An alert sink as the API shows it: everything but its secret (see SinkConfig)."""

    id: str = Field(pattern=CAMERA_ID_PATTERN,
                    description="short unique id: lower-case letters, digits, - and _")
    kind: SinkKind = Field(description="webhook (HTTP POST of JSON, signed) or mqtt (publish "
                                       "to a broker, QoS 1)")
    url: str = Field(min_length=1, max_length=2048,
                     description="webhook: the http(s) URL to POST to; mqtt: mqtt://[user:"
                                 "password@]host[:port] or mqtts:// for TLS (ports 1883 and "
                                 "8883 by default)")
    topic: str = Field("clipwatch", max_length=200, pattern=MQTT_TOPIC_PATTERN,
                       description="mqtt: the topic prefix; each message goes to "
                                   "<topic>/<camera>/<event id>/<transition>")
    enabled: bool = Field(True, description="a disabled sink keeps its place in the alert "
                                            "stream but delivers nothing")
    cameras: list[str] | None = Field(None, max_length=1000,
                                      description="only these cameras' alerts (default: every "
                                                  "camera)")
    zones: list[str | None] | None = Field(
        None, max_length=1000,
        description="only alerts of these zones; null stands for the whole frame (default: "
                    "every zone and the whole frame)")
    min_severity: float = Field(0.0, ge=0, le=11,
                                description="only alerts whose lowest regularity so far is at "
                                            "least this far below their threshold (severity = "
                                            "threshold - lowest regularity; an alert that "
                                            "deepens is sent from the transition that passes)")
    transitions: list[SinkTransition] = Field(
        default_factory=lambda: ["start", "update", "end", "ack"], min_length=1,
        description="which transitions to send")
    timeout_s: float = Field(5.0, gt=0, le=120,
                             description="one try gives up after this long (webhook: no "
                                         "answer; mqtt: no PUBACK)")
    retry_min_s: float = Field(1.0, gt=0, le=600,
                               description="the wait after a failed try; it doubles with "
                                           "each further failure")
    retry_max_s: float = Field(60.0, gt=0, le=3600,
                               description="the longest wait between tries (and between "
                                           "reconnects to an MQTT broker)")
    max_backlog: int = Field(10_000, ge=1, le=10_000_000,
                             description="a sink further behind than this many messages skips "
                                         "the oldest (counted and logged)")
    max_age_hours: float = Field(24.0, gt=0, le=24 * 365,
                                 description="a message older than this when its turn comes is "
                                             "skipped (counted and logged)")
    ca_file: Path | None = Field(None, description="https and mqtts: CA certificates to trust "
                                                   "(PEM; default: the system's)")

    @field_validator("url")
    @classmethod
    def _url_is_one_line(cls, value: str) -> str:
        if value != value.strip() or any(c.isspace() or c == "\0" for c in value):
            raise ValueError("url must be one line without spaces")
        return value

    @model_validator(mode="after")
    def _url_fits_kind(self) -> SinkSettings:
        from urllib.parse import urlsplit

        schemes = SINK_SCHEMES[self.kind]
        try:
            parts = urlsplit(self.url)
            host, _ = parts.hostname, parts.port  # a port that is not a number raises here
        except ValueError:
            raise ValueError("url is not a valid URL") from None
        if parts.scheme not in schemes:
            raise ValueError(f"a {self.kind} sink's url starts with "
                             f"{' or '.join(s + '://' for s in schemes)}")
        if not host:
            raise ValueError("url needs a host")
        if self.kind == "mqtt" and parts.path not in ("", "/"):
            raise ValueError("an mqtt url names the broker only: put the topic in `topic`")
        return self


class SinkConfig(SinkSettings):
    """An alert sink: a webhook or an MQTT broker that receives every alert transition."""

    secret: str | None = Field(None, min_length=16, max_length=256,
                               description="webhook: the key of the HMAC-SHA256 signature "
                                           "(X-Clipwatch-Signature); required for webhooks, "
                                           "never shown by the API")

    @model_validator(mode="after")
    def _secret_fits_kind(self) -> SinkConfig:
        if self.kind == "webhook" and self.secret is None:
            raise ValueError("a webhook sink needs a secret (16 characters or more) to sign "
                             "its messages")
        if self.kind == "mqtt" and self.secret is not None:
            raise ValueError("an mqtt sink has no secret: put the broker's user and password "
                             "in the url")
        return self


class ApiToken(_Strict):
    name: str = Field(pattern=ACCOUNT_NAME_PATTERN, description="who uses it (for the logs)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$",
                        description="SHA-256 of the token, from `clipwatch auth token`")
    role: Literal["viewer", "admin"] = "viewer"


# argon2id in its PHC string form; or PBKDF2-SHA256 (earlier versions: replaced at the
# user's next sign-in)
PASSWORD_HASH_PATTERN = (
    r"^(\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"
    r"|pbkdf2_sha256\$\d+\$[0-9a-f]+\$[0-9a-f]+)$")


class UserAccount(_Strict):
    name: str = Field(pattern=ACCOUNT_NAME_PATTERN, description="login name")
    password: str = Field(pattern=PASSWORD_HASH_PATTERN,
                          description="argon2id hash, from `clipwatch auth password` (PBKDF2 "
                                      "hashes of earlier versions are upgraded at sign-in)")
    role: Literal["viewer", "admin"] = "viewer"


class LoginLimits(_Strict):
    """Wrong passwords allowed before each further try must wait (the wait doubles)."""

    account_failures: int = Field(5, ge=1, le=1000,
                                  description="failed sign-ins for one name before waits start")
    address_failures: int = Field(20, ge=1, le=100_000,
                                  description="failed sign-ins from one client address (IPv6: "
                                              "its /64) before waits start")
    backoff_s: float = Field(1.0, gt=0, le=3600,
                             description="the first wait; each further failure doubles it")
    backoff_max_s: float = Field(900.0, gt=0, le=86_400,
                                 description="the longest wait; failures are forgotten this "
                                             "long after the last wait ends")
    check_queue: int = Field(4, ge=0, le=1000,
                             description="sign-ins that may wait for the password checker (one "
                                         "thread); more are refused at once (503)")


class AuthConfig(_Strict):
    """Off when empty (then the server only listens on loopback)."""

    tokens: list[ApiToken] = Field(default_factory=list, description="API tokens (hashed)")
    users: list[UserAccount] = Field(default_factory=list, description="viewer logins")
    session_hours: float = Field(12.0, gt=0, le=720, description="how long a login lasts")
    login: LoginLimits = Field(default_factory=LoginLimits,
                               description="limits on failed sign-ins and the password checker")


class Config(_Strict):
    cameras: list[CameraConfig] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    learning: LearningConfig = Field(default_factory=LearningConfig)
    sinks: list[SinkConfig] = Field(default_factory=list, max_length=32,
                                    description="alert sinks: webhooks and MQTT brokers that "
                                                "receive every alert transition")
    cluster: ClusterConfig | None = Field(
        None, description="run on a Ray cluster with events in PostgreSQL (clipwatch[cluster]); "
                          "absent: one process, events in SQLite")

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for camera in cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice")
            seen.add(camera.id)
            problem = special_file_problem(camera.source)
            if problem:  # a FIFO or device would hang or never end in the decoder
                raise ValueError(f"camera {camera.id!r}: {problem}")
        return cameras

    @field_validator("sinks")
    @classmethod
    def _unique_sink_ids(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        ids = [s.id for s in sinks]
        for sink_id in ids:
            if ids.count(sink_id) > 1:
                raise ValueError(f"sink id {sink_id!r} is used twice")
        return sinks

    @model_validator(mode="after")
    def _one_model_in_cluster_mode(self) -> Config:
        # The scorers run one model (model.path); a camera's own would be ignored silently.
        if self.cluster is not None:
            own = [c.id for c in self.cameras if c.model is not None]
            if own:
                raise ValueError(f"cameras {', '.join(own)} name their own model: not "
                                 "available in cluster mode yet (the scorers run model.path)")
        return self

    @model_validator(mode="after")
    def _camera_limit(self) -> Config:
        if len(self.cameras) > self.server.max_cameras:
            raise ValueError(f"{len(self.cameras)} cameras, more than server.max_cameras "
                             f"({self.server.max_cameras})")
        return self


def demo_camera() -> CameraConfig:
    """The bundled sample (UCSD Ped2 test clip 1, abnormal from frame 61) as a looping camera.

    Its scene is busier than the clips the model was calibrated on, so it learns its own
    baseline from frames 1-60 (normal in the ground truth) the way an installer would on a
    new camera. Stride 1: the split model parts score about 27 frames/s on 2 cores, well
    above the clip's 10 frames/s.
    """
    return CameraConfig(id="demo", name="Demo: UCSD Ped2 test 1", source=str(SAMPLE_CLIP),
                        stride=1, loop=True, baseline_frames=60)


def one_line(error: ValidationError) -> str:
    """A pydantic error as one line: 'cameras.0.stride: Input should be ... (and 2 more)'."""
    errors = error.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def load_config(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections (cameras, model, ...)")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {one_line(exc)}") from None


class _ConfigDumper(yaml.SafeDumper):
    """safe_dump's YAML, with each polygon (masks, zones) on one line, [[x, y], ...]."""


def _is_polygon(data: list) -> bool:
    return bool(data) and all(isinstance(p, list) and len(p) == 2 and
                              all(type(v) in (int, float) for v in p) for p in data)


_ConfigDumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True if _is_polygon(data) else None))


def save_config(config: Config, path: str | os.PathLike[str]) -> None:
    """Write the config as YAML, atomically: a crash mid-write never leaves half a file."""
    path = Path(path)
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["cameras"] = [c.model_dump(mode="json", exclude_defaults=True) | {"source": c.source}
                       for c in config.cameras]
    text = yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write config {path}: {exc.strerror or exc}") from None
