"""The ONNX Runtime detector: loads a model and its sidecar, reconstructs clips.

CUDA (or TensorRT) is used only when a session really runs on it: onnxruntime-gpu lists the
CUDA provider even on a machine without a GPU, and then silently runs on the CPU, so the
detector checks the providers the session actually got and says in one log line when it
fell back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from clipwatch.errors import ModelError
from clipwatch.model.sidecar import ModelOutputs, Sidecar, read_sidecar

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class DetectorOptions:
    """How to run the session; 0 threads lets ONNX Runtime pick (one per physical core)."""

    device: str = "auto"  # auto | cpu | cuda | tensorrt
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    max_batch: int = 8
    spin: bool = False  # idle ORT threads spin-wait (see make_session); off by default
    graph_optimization: str = "all"  # disable_all | basic | extended | all (ORT's levels)


def _requested_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        wanted = ["CUDAExecutionProvider"]
    elif device == "tensorrt":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    elif device == "auto":
        # TensorRT builds an engine per input shape (minutes); CUDA is the predictable default.
        wanted = ["CUDAExecutionProvider"]
    else:
        raise ModelError(f"unknown device {device!r} (use auto, cpu, cuda or tensorrt)")
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def _check_graph(session: ort.InferenceSession, sidecar: Sidecar, path: Path) -> None:
    """Refuse a model whose sidecar and graph disagree: wrong names or wrong clip shape."""
    inputs = session.get_inputs()
    spec = sidecar.input_spec
    expected = [spec.clip_length, 1, spec.size, spec.size]
    if len(inputs) != 1 or inputs[0].name != sidecar.input_name:
        names = [i.name for i in inputs]
        raise ModelError(f"{path.name}: graph inputs {names} do not match the sidecar's "
                         f"{sidecar.input_name!r}")
    shape = list(inputs[0].shape)
    if len(shape) != 5 or shape[1:] != expected:
        raise ModelError(f"{path.name}: graph input shape {shape} does not match the sidecar's "
                         f"(batch, {', '.join(map(str, expected))})")
    outputs = tuple(o.name for o in session.get_outputs())
    if outputs != sidecar.output_names or outputs != ModelOutputs._fields:
        raise ModelError(f"{path.name}: graph outputs {list(outputs)} do not match the sidecar's "
                         f"{list(sidecar.output_names)}")


_OPTIMIZATION_LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def make_session(path: Path, options: DetectorOptions) -> tuple[ort.InferenceSession, str]:
    """An ONNX Runtime session for `path` on the device `options` asks for, and the device
    it really got ('cuda' or 'cpu'), with ORT's multi-line provider errors kept quiet."""
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.intra_op_threads
    session_options.inter_op_num_threads = options.inter_op_threads
    session_options.log_severity_level = 3  # ORT's own provider warnings are replaced below
    session_options.graph_optimization_level = _OPTIMIZATION_LEVELS[options.graph_optimization]
    if not options.spin:
        # ORT's worker threads spin-wait after each run by default. Where several sessions
        # take turns (the split parts, one per camera stage) their spinning pools fight for
        # the same cores: measured here, the split path ran at half speed until this was off.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # ORT's CPU arena keeps the largest batch's tensors for good: a burst of fresh clips (many
    # cameras starting at once) left the service 400-700 MB larger after they were removed.
    # Without it freed tensors go back to malloc (and the system); no slower here (a batch
    # of 8 clips: 0.41-0.45 s either way; 289 vs 685 MB after one fresh batch of 8).
    session_options.enable_cpu_mem_arena = False
    # Nor memory patterns, planned and kept per input shape: the frame-stepping parts see a
    # new batch shape for every number of cameras stepping together.
    session_options.enable_mem_pattern = False
    requested = _requested_providers(options.device)
    # onnxruntime-gpu prints multi-line errors when the CUDA libraries are missing; the
    # fallback is reported by the caller in one line instead (verbose logging keeps ORT's own).
    ort.set_default_logger_severity(2 if log.isEnabledFor(logging.DEBUG) else 4)
    try:
        session = ort.InferenceSession(str(path), session_options, providers=requested)
    except Exception as exc:  # ORT raises its own exception types for a file that is no graph
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{path} is not a loadable ONNX model ({first_line[:160]})") from None
    finally:
        ort.set_default_logger_severity(2)
    device = "cuda" if session.get_providers()[0] in GPU_PROVIDERS else "cpu"
    return session, device


class Detector:
    """Reconstructs batches of clips (B, T, 1, S, S) with ONNX Runtime."""

    def __init__(self, model_path: str | Path, options: DetectorOptions | None = None) -> None:
        self.path = Path(model_path)
        self.options = options or DetectorOptions()
        if self.path.is_dir():
            raise ModelError(f"model {self.path} is a folder, not an ONNX model file")
        if not self.path.is_file():
            raise ModelError(f"model {self.path} does not exist")
        self.sidecar = read_sidecar(self.path)
        self.session, self.device = make_session(self.path, self.options)
        _check_graph(self.session, self.sidecar, self.path)
        self.providers = self.session.get_providers()
        if self.options.device != "cpu" and self.device == "cpu":
            log.info("no usable GPU for ONNX Runtime (available: %s); running on the CPU",
                     ", ".join(ort.get_available_providers()))
        else:
            log.debug("ONNX Runtime on %s", self.providers[0])

    @property
    def input_spec(self):
        return self.sidecar.input_spec

    def reconstruct(self, clips: np.ndarray) -> np.ndarray:
        """Reconstruct (B, T, 1, S, S) float32 clips, in chunks of at most `max_batch`."""
        if clips.ndim != 5:
            raise ValueError(f"expected clips (B, T, 1, S, S), got shape {clips.shape}")
        clips = np.ascontiguousarray(clips, dtype=np.float32)
        parts = []
        for start in range(0, len(clips), self.options.max_batch):
            chunk = clips[start:start + self.options.max_batch]
            outputs = ModelOutputs(*self.session.run(None, {self.sidecar.input_name: chunk}))
            parts.append(outputs.reconstruction)
        return np.concatenate(parts)
