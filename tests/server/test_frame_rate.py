"""A camera faster than the model can score (a real 10 fps street video replayed at 100 fps):
it is sampled down evenly, visibly, and latency stays bounded instead of a backlog growing."""

from __future__ import annotations

import time

import numpy as np
from fastapi.testclient import TestClient
from server_helpers import wait_for

from clipwatch.config import CameraConfig, Config
from clipwatch.server.app import create_app


def test_a_too_fast_camera_is_sampled_evenly_and_latency_stays_bounded(shared_data, tmp_path):
    video = shared_data / "video" / "vtest.avi"
    config = Config(cameras=[CameraConfig(id="street", source=str(video), fps=100.0,
                                          loop=True, stride=1)])
    config.storage.dir = tmp_path / "store"
    with TestClient(create_app(config)) as client:
        view = wait_for(lambda: (v := client.get("/api/cameras/street").json())["sampled_fps"]
                        and v, 30, what="the camera to be sampled down")
        assert view["sampled_fps"] < 0.8 * view["fps_in"]
        latencies = []
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "subscribe", "cameras": ["street"], "video": False})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = ws.receive_json()
                if message["type"] == "score":
                    latencies.append((time.monotonic(), time.time() - message["captured_at"]))
        view = client.get("/api/cameras/street").json()
        assert view["frames_sampled_out"] > 0
        assert "sampled evenly" in (view["status"]["reason"] or "")
        # the queue barely drops once sampling has settled: frames are skipped evenly instead
        assert view["frames_dropped"] < 0.2 * view["frames_in"]
        ages = np.array([age for _, age in latencies])
        half = len(ages) // 2
        # bounded, and not growing (a backlog would make the second half older)
        assert np.percentile(ages, 95) < 1.0
        assert np.median(ages[half:]) < np.median(ages[:half]) + 0.2
        metrics = client.get("/metrics").text
        assert 'clipwatch_frames_sampled_out_total{camera="street"}' in metrics
        print(f"fps in {view['fps_in']:.0f}, sampled to {view['sampled_fps']:.1f}; "
              f"score age p50 {1000 * np.median(ages):.0f} ms, "
              f"p95 {1000 * np.percentile(ages, 95):.0f} ms over {len(ages)} scores")
