"""Load on loopback: several cameras and many websocket clients, some deliberately slow
(reading nothing), for a bounded time against a real `clipwatch serve`. Memory stays flat,
fast clients keep their frame rate, no alert is lost. The figures go to
test-artifacts/load.json (the bounds asserted are behaviour, not speed: a client's frame rate
is compared with the frames the service scored in the same window, and those with the rate
the service planned from its own measure of what it can score, so a slower or busier machine,
where the service samples its cameras down, is held to what that machine can do)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

from server_helpers import ServerProcess, free_port, replay_camera, write_config
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

CAMERAS, FAST_CLIENTS, SLOW_CLIENTS = 3, 8, 4
CAMERA_FPS = 10.0  # each camera's recording, replayed at its own rate
# The stalled clients are dropped by the server's keepalive about 40 s after they connect
# (25 s into the window); the window runs on 20 s after that.
WARMUP_S, DURATION_S = 15.0, 45.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def read_metrics(server) -> dict[str, float]:
    text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def total(metrics: dict[str, float], name: str) -> float:
    """A per-camera counter summed over the cameras."""
    return sum(v for k, v in metrics.items() if k.startswith(name + "{"))


def ws_url(server) -> str:
    return server.url.replace("http", "ws") + "/ws"


class Client(threading.Thread):
    """A viewer: subscribes to every camera with video; slow ones read nothing until told."""

    def __init__(self, server, slow: bool) -> None:
        super().__init__(daemon=True)
        self.server, self.slow = server, slow
        self.frames, self.alert_seqs, self.first_seq = 0, set(), None
        self.frames_at: list[tuple[float, int]] = []
        self.go, self.stop = threading.Event(), threading.Event()
        self.ready = threading.Event()
        self.reconnects = 0

    def run(self) -> None:
        # As the viewer does: when the server drops the connection (a stalled client misses
        # its keepalive pongs), reconnect and resume from the last alert seen.
        while not self.stop.is_set():
            try:
                self._session()
            except (ConnectionClosed, OSError, TimeoutError):
                self.reconnects += 1
                time.sleep(0.5)

    def _session(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.server.port))
        if self.slow and not self.go.is_set():
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # A slow client's library stops reading the socket once one message waits, so its
        # stall reaches the server; fast ones keep the library's default buffer.
        with connect(ws_url(self.server), sock=sock, max_queue=1 if self.slow else 16,
                     max_size=2**22, close_timeout=1) as ws:
            hello = json.loads(ws.recv(timeout=10))
            if self.first_seq is None:
                self.first_seq = hello["last_seq"]
            ws.send(json.dumps({"type": "subscribe", "cameras": ["*"]}))
            ws.send(json.dumps({"type": "resume",
                                "since": max(self.alert_seqs, default=self.first_seq)}))
            self.ready.set()
            if self.slow:
                self.go.wait()
            while not self.stop.is_set():
                try:
                    message = ws.recv(timeout=1)
                except TimeoutError:
                    continue
                if isinstance(message, bytes):
                    self.frames += 1
                    continue
                data = json.loads(message)
                if data["type"] == "alert":
                    self.alert_seqs.add(data["seq"])


def test_many_cameras_and_clients_with_slow_ones(shared_data, tmp_path):
    frames = shared_data / "ucsd_ped2" / "testing" / "frames"
    cameras = [replay_camera(frames / f"{i:02d}", camera_id=f"cam{i}", loop=True, fps=CAMERA_FPS,
                             stride=2, baseline_frames=None) for i in range(1, CAMERAS + 1)]
    for camera in cameras:  # the clips differ from the calibration data: a threshold that
        camera.threshold = 0.2  # alerts now and then keeps alerts flowing through the test
    server = ServerProcess(write_config(tmp_path, cameras), free_port(),
                           tmp_path / "serve.log").start()
    clients = [Client(server, slow=i >= FAST_CLIENTS)
               for i in range(FAST_CLIENTS + SLOW_CLIENTS)]
    try:
        for client in clients:
            client.start()
        for client in clients:
            assert client.ready.wait(20)
        time.sleep(WARMUP_S)
        pid = server.process.pid
        memory = [rss_mb(pid)]
        fast = [c for c in clients if not c.slow]
        frames_start = [c.frames for c in fast]
        scored_start = total(read_metrics(server), "clipwatch_frames_scored_total")
        started = time.monotonic()
        while time.monotonic() - started < DURATION_S:
            time.sleep(5)
            memory.append(rss_mb(pid))
        elapsed = time.monotonic() - started
        rates = [(c.frames - f0) / elapsed for c, f0 in zip(fast, frames_start, strict=True)]
        metrics = read_metrics(server)
        cameras_seen = server.get_json("/api/cameras")
        with connect(ws_url(server)) as probe:
            last_seq = json.loads(probe.recv(timeout=10))["last_seq"]
        for client in clients:
            client.go.set()  # the slow ones read at last
        deadline = time.monotonic() + 60
        for client in clients:
            expected = set(range(client.first_seq + 1, last_seq + 1))
            while not expected <= client.alert_seqs and time.monotonic() < deadline:
                time.sleep(0.5)
        for client in clients:
            client.stop.set()
    finally:
        server.stop()

    scored = total(metrics, "clipwatch_frames_scored_total")
    dropped = total(metrics, "clipwatch_frames_dropped_total")
    # The live frame rate: frames the service scored (each one is a video frame for every
    # subscribed client) per second over the same window as the clients' rates; and what it
    # planned to score: every frame, or the rate it sampled a camera down to where it
    # measured that it cannot score them all.
    scored_fps = (scored - scored_start) / elapsed
    planned_fps = sum(min(CAMERA_FPS, c["sampled_fps"] or CAMERA_FPS) for c in cameras_seen)
    report = {
        "cameras": CAMERAS, "clients_fast": FAST_CLIENTS, "clients_slow": SLOW_CLIENTS,
        "duration_s": round(elapsed, 1), "rss_mb": [round(m, 1) for m in memory],
        "peak_rss_mb": round(max(memory), 1),
        "rss_growth_mb": round(memory[-1] - memory[0], 1),
        # over the last 15 s: flat means no queue or buffer keeps growing
        "rss_spread_last_15s_mb": round(max(memory[-4:]) - min(memory[-4:]), 1),
        # how many of the last 15 s's 5-second samples grew by more than 2 MB
        "rss_rises_last_15s": sum(b - a > 2 for a, b in
                                  zip(memory[-4:-1], memory[-3:], strict=True)),
        "fast_client_frames_per_s": [round(r, 1) for r in rates],
        "scored_frames_per_s": round(scored_fps, 1),
        "planned_frames_per_s": round(planned_fps, 1),
        "cameras_fps_in": [c["fps_in"] and round(c["fps_in"], 1) for c in cameras_seen],
        "cameras_sampled_fps": [c["sampled_fps"] and round(c["sampled_fps"], 1)
                                for c in cameras_seen],
        "frames_scored": scored, "frames_dropped_at_capture": dropped,
        "websocket_frames_dropped": metrics.get("clipwatch_websocket_frames_dropped_total"),
        "alert_messages": last_seq,
        "client_reconnects": [c.reconnects for c in clients],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))
    print("load:", report)
    assert last_seq > 0, "no alert happened: the test proves nothing about alerts"
    for client in clients:  # no alert lost, fast or slow
        assert set(range(client.first_seq + 1, last_seq + 1)) <= client.alert_seqs
    # Bounded, then flat. Runs here saw steps of 10-45 MB within the window (one near the
    # start, one when the stalled clients were dropped and came back) and flat memory
    # between and after them: a step is an allocator settling, a leak would keep climbing.
    assert report["rss_growth_mb"] < 128
    # A leak keeps climbing: at most one step in the last 15 s, and no larger than the steps
    # seen (a CI run caught the reconnect step, +20 MB, in the very last sample).
    assert report["rss_rises_last_15s"] <= 1 and report["rss_spread_last_15s_mb"] < 48
    # The slow clients slow neither the pipeline (it scores most of what it planned: all 30
    # frames/s where the machine can, what it sampled the cameras down to where it cannot)
    # nor the fast clients (they keep most of the live frame rate).
    assert scored_fps > 0.7 * planned_fps
    assert min(rates) > 0.7 * scored_fps
    assert metrics["clipwatch_websocket_frames_dropped_total"] > 0  # the slow ones lost video
