"""/api/models: the model files the service can give a camera, with their sidecars."""

from __future__ import annotations

from fastapi import APIRouter

from clipwatch.server.auth import Viewer
from clipwatch.server.deps import ServiceDep
from clipwatch.server.schemas import ModelEntry

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("")
def list_models(service: ServiceDep, _: Viewer) -> list[ModelEntry]:
    """Every .onnx file in the model folder (model.folder) with its scene, calibration and
    metrics, which cameras run it, and the problem of a sidecar that cannot be used."""
    return [ModelEntry.model_validate(entry)
            for entry in service.models.catalog(service.config.cameras)]
