"""`clipwatch serve`: the config from a file and/or flags, then uvicorn on the app.

With no config and no --source it serves the demo camera (the bundled sample, looping) with
the bundled model, so a new user sees the service work at once.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import uvicorn

from clipwatch.config import CameraConfig, Config, ConfigError, demo_camera, load_config, one_line
from clipwatch.stream.local_files import special_file_problem

log = logging.getLogger("clipwatch")


def serve_config(config_path: str | None, sources: list[str], loop: bool, stride: int | None,
                 host: str | None, port: int | None, model: str | None, storage: str | None,
                 device: str | None, threads: int | None) -> Config:
    """The config `clipwatch serve` runs: the file's (or defaults), flags on top."""
    from pydantic import ValidationError

    config = load_config(config_path) if config_path else Config()
    try:
        taken = {c.id for c in config.cameras}
        for n, source in enumerate(sources, start=1):
            camera_id = f"cam{n}"
            while camera_id in taken:
                camera_id += "x"
            taken.add(camera_id)
            problem = special_file_problem(source)
            if problem:  # a FIFO or a device would hang or never end in the decoder
                raise ConfigError(f"--source: {problem}")
            config.cameras.append(CameraConfig(id=camera_id, source=source, loop=loop,
                                               stride=stride or 1))
        if not config_path and not sources:
            config.cameras.append(demo_camera())
        if len(config.cameras) > config.server.max_cameras:
            raise ConfigError(f"{len(config.cameras)} cameras, more than server.max_cameras "
                              f"({config.server.max_cameras})")
    except ValidationError as exc:
        raise ConfigError(f"--source: {one_line(exc)}") from None
    overrides = [(config.server, "host", host), (config.server, "port", port),
                 (config.model, "path", model and Path(model)),
                 (config.storage, "dir", storage and Path(storage)),
                 (config.model, "device", device), (config.model, "threads", threads)]
    for section, name, value in overrides:
        if value is None:
            continue
        try:
            setattr(section, name, value)  # validated on assignment
        except ValidationError as exc:
            flag = {"path": "model", "dir": "storage"}.get(name, name)
            raise ConfigError(f"--{flag}: {one_line(exc).split(': ', 1)[-1]}") from None
    return config


def check_bind(host: str, port: int) -> None:
    """Fail with one line before anything starts when the address cannot be listened on
    (uvicorn would otherwise log its own error after the cameras had started)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") \
                from None


def check_exposure(config: Config) -> None:
    """Refuse to listen beyond loopback without auth: anyone who reaches the port would see
    every camera and could change them."""
    auth = config.auth
    if auth.tokens or auth.users:
        return
    try:
        loopback = ipaddress.ip_address(config.server.host).is_loopback
    except ValueError:
        loopback = config.server.host == "localhost"
    if not loopback:
        raise ConfigError(f"refusing to listen on {config.server.host} without auth: add API "
                          "tokens or users to the config's auth section (clipwatch auth "
                          "token / clipwatch auth password), or bind 127.0.0.1")


def serve(config: Config, config_path: str | None) -> int:
    from clipwatch.server.app import create_app

    check_exposure(config)
    check_bind(config.server.host, config.server.port)
    app = create_app(config, Path(config_path) if config_path else None)
    host, port = config.server.host, config.server.port
    names = ", ".join(c.id for c in config.cameras) or "none yet (add them with the API)"
    log.info("serving %d camera(s) [%s] on http://%s:%d (viewer at /, API at /docs)",
             len(config.cameras), names, host, port)
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from loopback callers
    # as the client address, and a local caller could dodge the per-address login limits.
    uvicorn.run(app, host=host, port=port, log_level="warning", ws="websockets-sansio",
                proxy_headers=False)
    return 0
