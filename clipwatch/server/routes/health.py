"""Health (the process answers), readiness (it can score and store) and Prometheus metrics.

/healthz and /readyz are public (load balancers, orchestrators); /metrics needs a viewer.
With auth configured, an anonymous /readyz gets its status code and `{"ready": ...}` only:
the cameras, the model and the errors are for signed-in callers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clipwatch import __version__
from clipwatch.server.auth import public
from clipwatch.server.deps import ServiceDep
from clipwatch.server.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
@public
def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get("/readyz", responses={503: {"model": Readiness, "description": "not ready"}},
            response_model_exclude_unset=True)
@public
def ready(request: Request, service: ServiceDep, response: Response) -> Readiness:
    checks = Readiness.model_validate(service.readiness())
    if not checks.ready:
        response.status_code = 503
    if service.auth.identify(request) is None:  # anonymous, auth configured
        return Readiness(ready=checks.ready)
    return checks


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}},
                             "description": "Prometheus text format"}})
def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
