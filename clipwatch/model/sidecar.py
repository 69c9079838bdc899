"""The JSON sidecar beside every `<name>.onnx`: input spec, calibration, provenance, metrics.

It also owns the graph's tensor names (one result type, `ModelOutputs`), so export, the
detector and the sidecar check all agree on them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from clipwatch.errors import ModelError
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.stream.preprocess import InputSpec

SIDECAR_FORMAT = 1
INPUT_NAME = "clips"


class ModelOutputs(NamedTuple):
    """What the ONNX graph returns, in order; the field names are the graph's output names."""

    reconstruction: np.ndarray  # (B, T, 1, S, S), same normalization as the input


OUTPUT_NAMES: tuple[str, ...] = ModelOutputs._fields


@dataclass(frozen=True)
class Calibration:
    """Causal-score constants from normal footage: s(t) = 1 - (e(t) - e_lo) / e_hi."""

    e_lo: float
    e_hi: float
    threshold: float  # regularity below this is abnormal
    false_alarm_rate: float  # fraction of normal frames below `threshold` on the data below
    data: str  # what it was computed on
    frames: int
    # The e(t) these constants belong to: live scoring must use the same options.
    scoring: ScoringOptions = field(default_factory=ScoringOptions)

    def __post_init__(self) -> None:
        if not self.e_hi > 0:
            raise ModelError(f"calibration e_hi must be positive, got {self.e_hi}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scoring": self.scoring.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        fields = dict(data)
        fields["scoring"] = ScoringOptions.from_dict(fields.get("scoring") or {})
        return cls(**fields)


@dataclass
class Sidecar:
    name: str
    input_spec: InputSpec
    calibration: Calibration | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    input_name: str = INPUT_NAME
    output_names: tuple[str, ...] = OUTPUT_NAMES

    @property
    def scoring(self) -> ScoringOptions:
        """The model's scoring: the one its calibration was made with, else the plain sum."""
        return self.calibration.scoring if self.calibration else ScoringOptions()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SIDECAR_FORMAT,
            "name": self.name,
            "input": {"name": self.input_name, **self.input_spec.to_dict(),
                      "layout": "(batch, clip_length, 1, size, size) float32",
                      "normalization": "(pixel / 255 - mean) / std, grayscale"},
            "outputs": list(self.output_names),
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "provenance": self.provenance,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> Sidecar:
        try:
            if data.get("format") != SIDECAR_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {SIDECAR_FORMAT}")
            cal = data.get("calibration")
            return cls(
                name=str(data["name"]),
                input_spec=InputSpec.from_dict(data["input"]),
                calibration=Calibration.from_dict(cal) if cal else None,
                provenance=dict(data.get("provenance") or {}),
                metrics=dict(data.get("metrics") or {}),
                input_name=str(data["input"]["name"]),
                output_names=tuple(data["outputs"]),
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"sidecar {source} is malformed: {exc}") from None


def sidecar_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def read_sidecar(model_path: Path) -> Sidecar:
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ModelError(f"model {model_path} has no sidecar {path.name} beside it")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"sidecar {path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"sidecar {path} is malformed: not a JSON object")
    return Sidecar.from_dict(data, path)


def write_sidecar(model_path: Path, sidecar: Sidecar) -> Path:
    path = sidecar_path(model_path)
    path.write_text(json.dumps(sidecar.to_dict(), indent=2) + "\n")
    return path
