"""The FastAPI app, built by `create_app(config)`: tests call it, `clipwatch serve` runs it.

The lifespan starts the service (cameras, inference, store) with the server's event loop and
stops it on shutdown; routers get the service by dependency, never from a global. The
viewer's static files are served from the package: no build step, nothing from a CDN.

Three things hold for every route, here rather than in each:
- signing in: `auth.authenticated` is a dependency of the whole app; a route is open to
  anonymous callers only when marked `@public` (auth.py);
- errors: a `ClipwatchError` raised anywhere becomes its HTTP status (errors.py);
- the contract: responses are typed (schemas.py) and the OpenAPI document at /docs also
  lists the websocket's messages (messages.py) and how to sign in; /docs and /openapi.json
  are routes like the others, so they need a signed-in caller when auth is configured;
- the browser: every response carries a Content-Security-Policy and the other security
  headers (security.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from clipwatch import __version__
from clipwatch.config import Config
from clipwatch.errors import ClipwatchError
from clipwatch.server import auth, errors, messages, security
from clipwatch.server.routes import (
    admin,
    cameras,
    events,
    health,
    learning,
    live,
    models,
    session,
    sinks,
)
from clipwatch.server.service import Service

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024
DESCRIPTION = """A real-time video anomaly detector: cameras, alerts and their history.

**Signing in**: every route needs an API token (`Authorization: Bearer ...`) or the session
cookie from `POST /api/login`, except `/healthz`, `/readyz` (whether ready; the details
need a signed-in caller), `/api/login`, `/api/logout` and the viewer's page; with no `auth`
section in the config every caller is trusted (loopback only). Errors answer
`{"detail": "..."}`.
""" + messages.DESCRIPTION


def create_app(config: Config, config_path: Path | None = None) -> FastAPI:
    """The app for `config`. The model and store open here, so a bad model path or an
    unwritable store fails before the server listens."""
    if config.cluster is not None:  # Ray is imported only in cluster mode
        from clipwatch.cluster.web import ClusterService

        service: Service = ClusterService(config, config_path)
    else:
        service = Service(config, config_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    # Every request body here is a small JSON document; a larger one is refused (413).
    app = FastAPI(title="clipwatch", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, max_body_size=MAX_BODY_BYTES,
                  dependencies=[Depends(auth.authenticated)],
                  openapi_url=None, docs_url=None, redoc_url=None)  # security.add_docs
    app.add_middleware(security.SecurityHeaders)
    app.state.service = service
    app.add_exception_handler(ClipwatchError, errors.handle)
    app.add_exception_handler(RequestValidationError, errors.invalid_request)  # no echo
    for module in (admin, cameras, events, health, learning, live, models, session, sinks):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    sinks.document_webhooks(app)  # what webhook sinks receive, in /docs
    security.add_docs(app)

    @app.get("/", include_in_schema=False)
    @auth.public
    def viewer() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()  # FastAPI's, cached on the app; completed once here
            auth.document(schema, app.routes)
            messages.document(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
