"""Server fixtures: a real `clipwatch serve` replaying UCSD Ped2 test 1 in a loop."""

import pytest
from server_helpers import ServerProcess, free_port, ped2_clip01, replay_camera, write_config


@pytest.fixture
def looping_server(shared_data, tmp_path):
    # Every frame scored, at the clip's own rate: the default model calls skipped frames
    # abnormal (weights/README.md), which would skew the baseline the camera learns.
    camera = replay_camera(ped2_clip01(shared_data), loop=True, stride=1, fps=10.0)
    process = ServerProcess(write_config(tmp_path, [camera]), free_port(), tmp_path / "serve.log")
    yield process.start()
    process.stop()
