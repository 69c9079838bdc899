"""Helpers for the server tests: the real app replaying a real UCSD clip with an anomaly.

UCSD Ped2 test clip 1 is abnormal from frame 61 (a cyclist; index 60). The camera learns its
baseline from its first 60 frames (normal in the ground truth) and is paced at 20 fps,
twice the recording's rate, with stride 5, so the suite does not wait 18 s per replay.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from clipwatch.config import CameraConfig, Config, save_config

ABNORMAL_FROM_INDEX = 60  # frame 61, 1-based, in the UCSD ground truth
CLIP_LENGTH = 10  # frames per clip (the shipped model's)
# What the server sends a websocket client without being asked: alerts, status and camera
# list changes (to every client, whatever it subscribed to) and scores (to subscribers; video
# frames are binary), recordings' and learning jobs' progress. A test waiting for the
# reply to what it sent skips these.
UNPROMPTED_TYPES = frozenset({"alert", "status", "cameras", "score", "recording", "learning"})


def ped2_clip01(shared_data: Path) -> Path:
    return shared_data / "ucsd_ped2" / "testing" / "frames" / "01"


def replay_camera(source: Path, camera_id: str = "ped2", **changes) -> CameraConfig:
    fields = dict(id=camera_id, name="Ped2 test 1", source=str(source), fps=20.0, stride=5,
                  baseline_frames=60)
    fields.update(changes)
    return CameraConfig(**fields)


def write_config(folder: Path, cameras: list[CameraConfig], port: int = 8000,
                 auth=None) -> Path:
    config = Config(cameras=cameras)
    if auth is not None:
        config.auth = auth
    config.storage.dir = folder / "store"
    config.server.port = port
    path = folder / "clipwatch.yaml"
    save_config(config, path)
    return path


def parse_frame(data: bytes) -> tuple[dict, bytes]:
    """A binary websocket message: (header, JPEG bytes)."""
    (length,) = struct.unpack(">I", data[:4])
    return json.loads(data[4:4 + length]), data[4 + length:]


def receive_reply(ws, skip: frozenset[str] = UNPROMPTED_TYPES) -> dict:
    """The next JSON message on a TestClient websocket that is not one of `skip` (by
    default: the broadcasts any client may get at any time), skipping binary video frames.
    The message is returned whatever its type, so a wrong reply still fails the test."""
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            pytest.fail(f"the server closed the websocket ({message.get('code')}: "
                        f"{message.get('reason') or 'no reason'}) before it replied")
        if message.get("text") is None:
            continue  # a video frame
        data = json.loads(message["text"])
        if data.get("type") not in skip:
            return data


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`clipwatch serve [--config PATH]` in a subprocess: a real server on a real port."""

    def __init__(self, config_path: Path | None, port: int, log_path: Path,
                 cwd: Path | None = None) -> None:
        self.config_path, self.port, self.log_path = config_path, port, log_path
        self.cwd = cwd
        self.process = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        import subprocess
        import sys
        import urllib.request

        log = open(self.log_path, "ab")  # noqa: SIM115 (the process owns it until it exits)
        config = ["--config", str(self.config_path)] if self.config_path else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clipwatch", "serve", *config, "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd)

        def ready():
            if self.process.poll() is not None:
                pytest.fail(f"clipwatch serve exited with {self.process.returncode}: "
                            f"{self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(ready, timeout, what=f"clipwatch serve on port {self.port}")
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(20)

    def get_json(self, path: str):
        import urllib.request

        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())


class SilentServer:
    """Accepts TCP connections and never answers: a stream whose open hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def open_connections(self) -> int:
        """Connections the client has not closed yet."""
        count = 0
        for conn in list(self.held):
            conn.setblocking(False)
            try:
                while conn.recv(65536):  # what the client sent, then b"" once it closed
                    pass
            except BlockingIOError:
                count += 1  # nothing more to read, and not closed
            except OSError:
                pass  # reset by the client
        return count

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
