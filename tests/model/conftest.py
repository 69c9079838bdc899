"""Model fixtures: a freshly initialised network exported to ONNX, for parity and sidecar tests."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="export tests need the train extra (torch)")

from clipwatch.model.checkpoint import save_checkpoint  # noqa: E402
from clipwatch.model.export import export_onnx  # noqa: E402
from clipwatch.model.network import SpatiotemporalAutoencoder  # noqa: E402
from clipwatch.stream.preprocess import InputSpec  # noqa: E402


def make_checkpoint(path: Path, seed: int = 7) -> Path:
    """A checkpoint of an untrained network, in the format the trainer writes."""
    torch.manual_seed(seed)
    model = SpatiotemporalAutoencoder()
    save_checkpoint(path, {
        "model": model.state_dict(), "network_args": model.args.to_dict(),
        "input_spec": InputSpec().to_dict(), "config": {"data": "none", "seed": seed},
        "step": 0, "losses": [],
    })
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(checkpoint path, export report) of an untrained network exported once per session."""
    folder = tmp_path_factory.mktemp("export")
    checkpoint = make_checkpoint(folder / "untrained.pt")
    report = export_onnx(checkpoint, folder / "untrained.onnx")
    return checkpoint, report
