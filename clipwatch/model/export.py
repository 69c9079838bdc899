"""ONNX export from a checkpoint alone, ending with a torch-vs-ONNX Runtime comparison.

The graph takes `clips` (batch, T, 1, S, S) with a dynamic batch and returns the names in
`ModelOutputs`. The sidecar records the input spec and how the model was made.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from clipwatch import __version__
from clipwatch.model.checkpoint import load_checkpoint, model_from_checkpoint
from clipwatch.model.provenance import git_commit, hardware
from clipwatch.model.sidecar import INPUT_NAME, OUTPUT_NAMES, Sidecar, write_sidecar

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max abs difference on outputs in [-1, 1]


@dataclass(frozen=True)
class ExportReport:
    onnx_path: Path
    sidecar_path: Path
    max_abs_diff: float
    parity_clips: int


def provenance_from_checkpoint(payload: dict, checkpoint_path: Path) -> dict:
    config = payload.get("config", {})
    frames = payload.get("train_frames")
    clips_seen = payload["step"] * config.get("batch_size", 0)
    return {
        "checkpoint": Path(checkpoint_path).name,
        "training_data": config.get("data"),
        "train_clips": payload.get("train_clips"),
        "held_out_clips": list(config.get("holdout", ())),
        "steps": payload["step"],
        "batch_size": config.get("batch_size"),
        "clips_seen": clips_seen,
        "train_frames": frames,
        "frame_strides": list(config.get("frame_strides", ())),
        "learning_rate": config.get("lr"),
        "lr_schedule": config.get("lr_schedule", "constant"),
        "run_history": payload.get("history"),
        "bf16": config.get("bf16"),
        "seed": config.get("seed"),
        "train_seconds": round(payload.get("train_seconds", 0.0), 1),
        "train_hardware": payload.get("hardware"),
        "final_loss": payload["losses"][-1] if payload.get("losses") else None,
        "code_version": payload.get("code_version"),
        "code_commit": payload.get("code_commit"),
        "exported_by": f"clipwatch {__version__} ({git_commit() or 'no git'})",
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "export_hardware": hardware(),
    }


def export_onnx(checkpoint_path: Path, onnx_path: Path, name: str | None = None,
                parity_clips: int = 2, seed: int = 1234) -> ExportReport:
    """Export a checkpoint to ONNX + sidecar and check ONNX Runtime against PyTorch."""
    payload = load_checkpoint(checkpoint_path)
    model, spec = model_from_checkpoint(payload)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, spec.clip_length, 1, spec.size, spec.size)
    with warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is deprecated; it is exact and fast here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(onnx_path), input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in OUTPUT_NAMES}},
        )
    # Parity on fresh random clips in the model's input range, batched to exercise the batch axis.
    rng = np.random.default_rng(seed)
    clips = rng.uniform(-1, 1, (parity_clips, spec.clip_length, 1, spec.size, spec.size))
    clips = clips.astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = session.run(list(OUTPUT_NAMES), {INPUT_NAME: clips})[0]
    with torch.no_grad():
        reference = model(torch.from_numpy(clips)).numpy()
    max_abs_diff = float(np.abs(ours - reference).max())
    if max_abs_diff > PARITY_TOLERANCE:
        onnx_path.unlink()
        raise RuntimeError(f"ONNX Runtime differs from PyTorch by {max_abs_diff:.2e} "
                           f"(tolerance {PARITY_TOLERANCE:.0e}); export discarded")
    sidecar = Sidecar(
        name=name or onnx_path.stem, input_spec=spec,
        provenance=provenance_from_checkpoint(payload, checkpoint_path),
        metrics={"export_parity_max_abs_diff": max_abs_diff},
    )
    sidecar_file = write_sidecar(onnx_path, sidecar)
    log.debug("exported %s; ONNX Runtime vs PyTorch max abs diff %.2e on %d clips",
             onnx_path, max_abs_diff, parity_clips)
    return ExportReport(onnx_path, sidecar_file, max_abs_diff, parity_clips)
