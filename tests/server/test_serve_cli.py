"""`clipwatch serve` as a user runs it: the demo with nothing configured, and bad input refused
with one line and a non-zero exit before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import ServerProcess, free_port, wait_for


def serve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipwatch", "serve", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_serve_with_nothing_configured_runs_the_demo_camera(tmp_path):
    # No config and no --source: the bundled sample replays as a camera with the bundled
    # model, the event store lands in ./clipwatch-data. (--port only so that a developer's
    # own running demo on 8000 cannot break the test.)
    port = free_port()
    server = ServerProcess(None, port, tmp_path / "serve.log", cwd=tmp_path).start()
    try:
        (camera,) = server.get_json("/api/cameras")
        assert camera["id"] == "demo" and camera["loop"] is True
        wait_for(lambda: server.get_json("/api/cameras/demo")["frames_scored"] > 20, 60,
                 what="the demo camera's scores")
        assert (tmp_path / "clipwatch-data" / "events.db").is_file()
    finally:
        server.stop()


@pytest.mark.parametrize("args, message", [
    (["--config", "missing.yaml"], "config missing.yaml does not exist"),
    (["--model", "nope.onnx"], "model nope.onnx does not exist"),
    (["--port", "70000"], "--port: Input should be less than or equal to 65535"),
    (["--device", "tpu"], "invalid choice"),
    (["--stride", "0", "--source", "x"], "must be at least 1"),
])
def test_bad_serve_input_is_one_line(tmp_path, args, message):
    run = serve(*args, cwd=tmp_path)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert "Traceback" not in run.stderr


def test_a_busy_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run = serve("--port", str(port), "--storage", str(tmp_path / "s"), cwd=tmp_path)
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "s").exists()
