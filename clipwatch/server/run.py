"""`clipwatch serve`: the config from a file and/or flags, then uvicorn on the app.

With no config and no --source it serves the demo camera (the bundled sample, looping) with
the bundled model, so a new user sees the service work at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from clipwatch.config import CameraConfig, Config, ConfigError, demo_camera, load_config, one_line

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
            config.cameras.append(CameraConfig(id=camera_id, source=source, loop=loop,
                                               stride=stride or 1))
        if not config_path and not sources:
            config.cameras.append(demo_camera())
        if host is not None:
            config.server.host = host
        if port is not None:
            config.server.port = port
        if model is not None:
            config.model.path = Path(model)
        if storage is not None:
            config.storage.dir = Path(storage)
        if device is not None:
            config.model.device = device
        if threads is not None:
            config.model.threads = threads
    except ValidationError as exc:
        raise ConfigError(one_line(exc)) from None
    return config


def serve(config: Config, config_path: str | None) -> int:
    from clipwatch.server.app import create_app

    app = create_app(config, Path(config_path) if config_path else None)
    host, port = config.server.host, config.server.port
    names = ", ".join(c.id for c in config.cameras) or "none yet (add them with the API)"
    log.info("serving %d camera(s) [%s] on http://%s:%d (viewer at /, API at /docs)",
             len(config.cameras), names, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", ws="websockets-sansio")
    return 0
