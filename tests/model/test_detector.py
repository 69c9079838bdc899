"""The ONNX Runtime detector: real sessions, provider choice and fallback, batching."""

import logging

import numpy as np
import pytest

from clipwatch.errors import ModelError
from clipwatch.model.detector import Detector, DetectorOptions


def test_cpu_is_used_and_fallback_is_logged_once(exported, caplog):
    _, report = exported
    with caplog.at_level(logging.INFO, logger="clipwatch.model.detector"):
        detector = Detector(report.onnx_path, DetectorOptions(device="auto"))
    fallback = [r for r in caplog.records if "running on the CPU" in r.message]
    if detector.device == "cpu":
        assert detector.providers == ["CPUExecutionProvider"]
        assert len(fallback) == 1
    else:  # a machine with a real GPU: the session runs there and nothing is said
        assert detector.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        assert fallback == []


def test_explicit_cpu_says_nothing(exported, caplog):
    _, report = exported
    with caplog.at_level(logging.INFO, logger="clipwatch.model.detector"):
        detector = Detector(report.onnx_path, DetectorOptions(device="cpu"))
    assert detector.providers == ["CPUExecutionProvider"]
    assert not any("running on the CPU" in r.message for r in caplog.records)


def test_batches_in_chunks_give_the_same_reconstruction(exported):
    _, report = exported
    clips = np.random.default_rng(3).uniform(-1, 1, (5, 10, 1, 227, 227)).astype(np.float32)
    whole = Detector(report.onnx_path, DetectorOptions(device="cpu", max_batch=8))
    chunked = Detector(report.onnx_path, DetectorOptions(device="cpu", max_batch=2,
                                                         intra_op_threads=1))
    a, b = whole.reconstruct(clips), chunked.reconstruct(clips)
    assert a.shape == b.shape == clips.shape
    assert np.abs(a - b).max() < 1e-5


def test_unknown_device_and_missing_model_are_refused(exported, tmp_path):
    _, report = exported
    with pytest.raises(ModelError, match="unknown device"):
        Detector(report.onnx_path, DetectorOptions(device="tpu"))
    with pytest.raises(ModelError, match="does not exist"):
        Detector(tmp_path / "nothing.onnx")


