"""Checkpoints: the network's weights plus everything needed to rebuild it and resume training.

A checkpoint carries its own network arguments and input spec, so export needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from clipwatch.errors import ModelError
from clipwatch.model.network import NetworkArgs, SpatiotemporalAutoencoder
from clipwatch.stream.preprocess import InputSpec

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): an interrupted save never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ModelError(f"{path} is not a clipwatch checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a clipwatch checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> tuple[SpatiotemporalAutoencoder, InputSpec]:
    """Rebuild the network (eval mode) and its input spec from a loaded checkpoint."""
    model = SpatiotemporalAutoencoder(NetworkArgs.from_dict(payload["network_args"]))
    model.load_state_dict(payload["model"])
    model.eval()
    return model, InputSpec.from_dict(payload["input_spec"])
