"""The FastAPI app, built by `create_app(config)`: tests call it, `clipwatch serve` runs it.

The lifespan starts the service (cameras, inference, store) with the server's event loop and
stops it on shutdown; routers get the service by dependency, never from a global. The
viewer's static files are served from the package: no build step, nothing from a CDN.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from clipwatch import __version__
from clipwatch.config import Config
from clipwatch.server.routes import admin, cameras, events, health, live, session
from clipwatch.server.service import Service

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024


def create_app(config: Config, config_path: Path | None = None) -> FastAPI:
    """The app for `config`. The model and store open here, so a bad model path or an
    unwritable store fails before the server listens."""
    service = Service(config, config_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    # Every request body here is a small JSON document; a larger one is refused (413).
    app = FastAPI(title="clipwatch", version=__version__, lifespan=lifespan,
                  max_body_size=MAX_BODY_BYTES)
    app.state.service = service
    for module in (admin, cameras, events, health, live, session):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def viewer() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app
