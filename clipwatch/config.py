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
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clipwatch.errors import ClipwatchError
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

    @field_validator("source")
    @classmethod
    def _source_is_one_line(cls, value: str) -> str:
        if value != value.strip() or any(c in value for c in "\r\n\0"):
            raise ValueError("source must be one line without surrounding spaces")
        return value

    @model_validator(mode="after")
    def _default_name(self) -> CameraConfig:
        if not self.name:
            self.name = self.id
        return self


class ModelConfig(_Strict):
    path: Path = Field(DEFAULT_MODEL, description="ONNX model with its .json sidecar")
    device: Device = Field("auto", description="where ONNX Runtime runs")
    threads: int = Field(0, ge=0, le=256, description="intra-op threads (0: one per core)")
    max_batch: int = Field(8, ge=1, le=64, description="most clips in one inference call")
    variant: ProductionVariant = Field(
        "auto", description="inference variant (clipwatch bench compares them, research "
                            "variants too): " + VARIANT_HELP)


class StorageConfig(_Strict):
    dir: Path = Field(Path("clipwatch-data"),
                      description="event database (events.db) and snapshot JPEGs")
    jpeg_quality: int = Field(85, ge=30, le=100, description="snapshot and live JPEG quality")
    retention_days: float | None = Field(30.0, gt=0, description="delete snapshot files of "
                                         "events older than this (the events stay)")
    max_snapshot_mb: float | None = Field(2048.0, gt=0, description="delete the oldest "
                                          "snapshot files beyond this total size")


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


def save_config(config: Config, path: str | os.PathLike[str]) -> None:
    """Write the config as YAML, atomically: a crash mid-write never leaves half a file."""
    path = Path(path)
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["cameras"] = [c.model_dump(mode="json", exclude_defaults=True) | {"source": c.source}
                       for c in config.cameras]
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write config {path}: {exc.strerror or exc}") from None
