"""Export from a checkpoint alone: torch vs ONNX Runtime parity, the sidecar, refused mismatches."""

import json
import shutil

import numpy as np
import pytest
import torch

from clipwatch.errors import ModelError
from clipwatch.model.checkpoint import load_checkpoint, model_from_checkpoint
from clipwatch.model.detector import Detector
from clipwatch.model.export import PARITY_TOLERANCE
from clipwatch.model.sidecar import OUTPUT_NAMES, read_sidecar


def test_export_parity_torch_vs_onnx_runtime(exported):
    checkpoint, report = exported
    assert report.max_abs_diff < PARITY_TOLERANCE
    # Check again independently, on a real-sized batch of other random clips, through Detector.
    model, spec = model_from_checkpoint(load_checkpoint(checkpoint))
    clips = np.random.default_rng(99).uniform(-1, 1, (3, 10, 1, 227, 227)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(clips)).numpy()
    ours = Detector(report.onnx_path).reconstruct(clips)
    assert ours.shape == (3, 10, 1, 227, 227)
    assert np.abs(ours - reference).max() < PARITY_TOLERANCE


def test_sidecar_records_spec_and_provenance(exported):
    _, report = exported
    sidecar = read_sidecar(report.onnx_path)
    assert sidecar.input_spec.clip_length == 10 and sidecar.input_spec.size == 227
    assert sidecar.output_names == OUTPUT_NAMES
    assert sidecar.provenance["steps"] == 0
    assert sidecar.provenance["seed"] == 7
    assert sidecar.metrics["export_parity_max_abs_diff"] == report.max_abs_diff


@pytest.fixture
def model_copy(exported, tmp_path):
    _, report = exported
    onnx = tmp_path / "copy.onnx"
    shutil.copy(report.onnx_path, onnx)
    shutil.copy(report.sidecar_path, onnx.with_suffix(".json"))
    return onnx


def edit_sidecar(onnx, edit) -> None:
    path = onnx.with_suffix(".json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["input"].update(clip_length=8), r"input shape .* does not match"),
    (lambda d: d["input"].update(size=128), r"input shape .* does not match"),
    (lambda d: d["input"].update(name="frames"), r"graph inputs \['clips'\] do not match"),
    (lambda d: d.update(outputs=["recon", "errors"]), r"graph outputs .* do not match"),
    (lambda d: d.pop("input"), r"sidecar .* is malformed"),
    (lambda d: d.update(format=99), r"sidecar .* is malformed"),
])
def test_sidecar_that_disagrees_with_the_graph_is_refused(model_copy, edit, message):
    edit_sidecar(model_copy, edit)
    with pytest.raises(ModelError, match=message):
        Detector(model_copy)


def test_missing_or_broken_sidecar_is_refused(model_copy):
    sidecar = model_copy.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        Detector(model_copy)
    sidecar.unlink()
    with pytest.raises(ModelError, match="has no sidecar"):
        Detector(model_copy)


def test_a_file_that_is_not_a_model_is_refused(model_copy):
    model_copy.write_bytes(b"this is not an onnx graph" * 10)
    with pytest.raises(ModelError, match="is not a loadable ONNX model"):
        Detector(model_copy)


def test_export_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    from clipwatch.model.export import export_onnx

    bogus = tmp_path / "bogus.pt"
    bogus.write_text("nope")
    with pytest.raises(ModelError, match="is not a clipwatch checkpoint"):
        export_onnx(bogus, tmp_path / "out.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "out.onnx")


def test_pixel_shuffle_is_exactly_a_transposed_convolution():
    from torch import nn

    from clipwatch.model.fast_network import ConvPixelShuffle

    torch.manual_seed(0)
    # the network's two (k=5 s=2, k=11 s=4) and shapes where k is not a multiple of s
    for c_in, c_out, k, s, n in [(64, 128, 5, 2, 26), (128, 1, 11, 4, 55), (3, 2, 4, 2, 7),
                                 (2, 3, 3, 3, 5), (4, 4, 2, 2, 6)]:
        deconv = nn.ConvTranspose2d(c_in, c_out, k, stride=s)
        x = torch.randn(2, c_in, n, n)
        with torch.no_grad():
            expected, ours = deconv(x), ConvPixelShuffle(deconv)(x)
        assert ours.shape == expected.shape
        assert torch.allclose(ours, expected, atol=1e-5 * float(expected.abs().max()) + 1e-6)


def test_parts_exported_from_an_onnx_model_match_the_full_network(exported, tmp_path):
    import shutil

    from clipwatch.model.fast_export import PARTS, export_parts, part_path, write_manifest

    _, report = exported
    model = tmp_path / "m.onnx"
    shutil.copy(report.onnx_path, model)
    shutil.copy(report.sidecar_path, tmp_path / "m.json")
    clips = np.random.default_rng(0).uniform(-1, 1, (2, 10, 1, 227, 227)).astype(np.float32)
    diffs = export_parts(model, clips)
    assert set(diffs) == {"decoder", "decoder_convt", "step", "cell"}
    assert max(diffs.values()) < 1e-4
    assert all(part_path(model, p).is_file() for p in PARTS)
    manifest = write_manifest(model, diffs, [])
    assert "encoder.0.weight" in manifest.read_text()
