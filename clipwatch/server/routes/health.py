"""Health (the process answers), readiness (it can score and store) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clipwatch import __version__
from clipwatch.server.auth import Viewer
from clipwatch.server.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
def ready(service: ServiceDep) -> JSONResponse:
    checks = service.readiness()
    return JSONResponse(checks, status_code=200 if checks["ready"] else 503)


@router.get("/metrics")
def metrics(service: ServiceDep, _: Viewer) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
