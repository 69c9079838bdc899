"""ModelRegistry: the models the live service runs, one loaded copy per model file.

Every camera scores with a model: its own (`model:` in its config entry) or the service-wide
default (`model.path`). Cameras naming the same file share one `LoadedModel` (one set of ONNX
Runtime sessions), so the inference loop batches their clips together; a model no camera uses
any more is let go.

It also owns the model folder (`model.folder`, default the default model's folder): what
`GET /api/models` lists with each sidecar's scene, calibration and metrics, and the only
place a model named through the API may come from (a request cannot make the service open an
arbitrary file). A model whose sidecar does not match its graph is refused with the loader's
own one-line reason, and the camera keeps the model it had.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from clipwatch.config import CameraConfig, ModelConfig
from clipwatch.errors import ClipwatchError, ModelError
from clipwatch.model.detector import Detector, DetectorOptions
from clipwatch.model.reconstructors import LoadedModel, load_model
from clipwatch.model.sidecar import read_sidecar

log = logging.getLogger(__name__)

MAX_LISTED = 500  # models listed from the folder at most (a folder is not a database)


class ModelRefused(ClipwatchError):
    """A model named for a camera cannot be used: outside the model folder, missing, or its
    sidecar does not match its graph (422; the camera keeps its model)."""


class ModelRegistry:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.options = DetectorOptions(device=config.device, intra_op_threads=config.threads,
                                       max_batch=config.max_batch)
        self.folder = (config.folder or Path(config.path).parent).resolve()
        self._loaded: dict[Path, LoadedModel] = {}
        # The graph check of listed models, by file and its (size, mtime): a listing opens
        # each model once, not on every request.
        self._checked: dict[Path, tuple[tuple[int, int], str | None]] = {}
        self._lock = threading.Lock()  # API threads load while the service starts cameras
        self.default = self._load(Path(config.path))

    # -- loading -------------------------------------------------------------------------

    def _load(self, path: Path) -> LoadedModel:
        key = path.resolve()
        with self._lock:
            model = self._loaded.get(key)
            if model is None:
                model = load_model(path, self.options, self.config.variant)
                self._loaded[key] = model
                log.info("model %s loaded (%s)", path, model.variant)
            return model

    def for_camera(self, camera: CameraConfig) -> LoadedModel:
        """The camera's own model, loaded once and shared, or the default; ModelRefused when
        it cannot be loaded."""
        if camera.model is None:
            return self.default
        try:
            return self._load(Path(camera.model))
        except ModelError as exc:
            raise ModelRefused(f"camera {camera.id}: {exc}") from None

    def keep_only(self, cameras: list[CameraConfig]) -> None:
        """Let go of the models no camera names (the default stays loaded)."""
        wanted = {self.default.detector.path.resolve()}
        wanted.update(Path(c.model).resolve() for c in cameras if c.model is not None)
        with self._lock:
            for key in [k for k in self._loaded if k not in wanted]:
                log.info("model %s is no longer used; unloaded", key)
                del self._loaded[key]

    @property
    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._loaded.values())

    # -- the folder ----------------------------------------------------------------------

    def resolve_api_path(self, name: str) -> Path:
        """A model named through the API ('gate.onnx', 'weights/gate.onnx' or an absolute
        path): an existing .onnx file inside the model folder, or ModelRefused."""
        raw = Path(name)
        candidates = [raw] if raw.is_absolute() else [Path.cwd() / raw, self.folder / raw]
        for candidate in candidates:
            path = candidate.resolve()
            if path.is_relative_to(self.folder) and path.is_file():
                if path.suffix != ".onnx":
                    raise ModelRefused(f"model {name!r} is not an .onnx file")
                return path
        raise ModelRefused(f"no model {name!r} in the model folder {self.folder}")

    def catalog(self, cameras: list[CameraConfig]) -> list[dict[str, Any]]:
        """Every .onnx file in the folder with its sidecar summary, which cameras run it, and
        the problem of a model whose sidecar cannot be read or does not match its graph
        (checked once per file version on the CPU; never loaded for scoring by this call)."""
        users: dict[Path, list[str]] = {}
        default = self.default.detector.path.resolve()
        for camera in cameras:
            path = Path(camera.model).resolve() if camera.model is not None else default
            users.setdefault(path, []).append(camera.id)
        with self._lock:
            loaded = dict(self._loaded)
        entries = []
        for path in sorted(self.folder.glob("*.onnx"))[:MAX_LISTED]:
            key = path.resolve()
            entry: dict[str, Any] = {
                "name": path.name, "path": str(path), "default": key == default,
                "loaded": key in loaded, "cameras": users.get(key, []),
                "variant": loaded[key].variant if key in loaded else None,
                "size_bytes": path.stat().st_size, "error": None,
                "scene": None, "calibration": None, "metrics": None, "provenance": None}
            try:
                sidecar = read_sidecar(path)
            except ModelError as exc:
                entry["error"] = str(exc)
            else:
                entry["error"] = None if key in loaded else self._graph_problem(path)
                summary = sidecar.to_dict()
                provenance = summary.get("provenance") or {}
                entry["scene"] = provenance.get("scene") or provenance.get("training_data")
                entry["calibration"] = summary.get("calibration")
                entry["metrics"] = summary.get("metrics")
                entry["provenance"] = summary.get("provenance")
            entries.append(entry)
        return entries

    def _graph_problem(self, path: Path) -> str | None:
        """Why the model's graph and sidecar disagree (the loader's check, on the CPU), or
        None; remembered until the file changes."""
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        known = self._checked.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            Detector(path, DetectorOptions(device="cpu", intra_op_threads=1))
            problem = None
        except ModelError as exc:
            problem = str(exc)
        self._checked[path] = (stamp, problem)
        return problem
