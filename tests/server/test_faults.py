"""Faulty cameras beside a good one, in one running service: a camera that never answers, a
URL that is not a stream, a recording with a corrupt frame, frames that change size. Each
gets a clear status; the good camera keeps scoring and the inference loop meets no error.

How many frames get scored depends on the machine: where scoring cannot follow, the service
samples cameras down (`frames_sampled_out`) and a full queue drops frames (`frames_dropped`).
The counts asserted are relative to what the service kept for scoring, so they hold on a slow
or busy machine too; the queue holds the whole changing-size recording, so none of its frames
is dropped (a drop would restart its clips and cost the frames waiting for them)."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest
from fastapi.testclient import TestClient
from server_helpers import SilentServer, ped2_clip01, replay_camera, wait_for

from clipwatch.config import CameraConfig, Config
from clipwatch.server.app import create_app

SIZES_FRAMES = 60  # the recording whose frames change size


class HtmlPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b"<html><body>not a video</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def faulty(shared_data, tmp_path):
    clip = ped2_clip01(shared_data)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(40):
        shutil.copy(clip / f"{i:03d}.jpg", corrupt / f"{i:03d}.jpg")
    (corrupt / "020.jpg").write_bytes(b"\xff\xd8 this is not a JPEG after all")
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    for i in range(SIZES_FRAMES):  # every third frame another size, as when a camera changes mode
        image = cv2.imread(str(clip / f"{i:03d}.jpg"))
        scale = (1.0, 2.0, 0.5)[i % 3]
        cv2.imwrite(str(sizes / f"{i:03d}.jpg"), cv2.resize(image, None, fx=scale, fy=scale))
    silent = SilentServer()
    web = ThreadingHTTPServer(("127.0.0.1", 0), HtmlPage)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    config = Config(cameras=[
        replay_camera(clip.parent / "02", camera_id="good", loop=True),
        CameraConfig(id="silent", source=f"rtsp://127.0.0.1:{silent.port}/stream",
                     open_timeout_s=2.0, read_timeout_s=2.0),
        CameraConfig(id="html", source=f"http://127.0.0.1:{web.server_address[1]}/video",
                     open_timeout_s=2.0),
        replay_camera(corrupt, camera_id="corrupt"),
        replay_camera(sizes, camera_id="sizes", stride=1, fps=10.0),
    ])
    config.storage.dir = tmp_path / "store"
    config.live.frame_queue = SIZES_FRAMES
    with TestClient(create_app(config)) as client:
        yield client
    silent.close()
    web.shutdown()


def status(client, camera_id):
    return client.get(f"/api/cameras/{camera_id}").json()["status"]


def test_faulty_cameras_get_a_clear_status_and_the_good_one_carries_on(faulty):
    client = faulty
    good_before = client.get("/api/cameras/good").json()
    silent = wait_for(lambda: (s := status(client, "silent"))["state"] == "lost" and s, 20,
                      what="the silent camera to show as lost")
    assert "cannot open stream" in silent["reason"] and "within 2 s" in silent["reason"]
    html = wait_for(lambda: (s := status(client, "html"))["state"] == "lost" and s, 20,
                    what="the non-stream URL to show as lost")
    assert "cannot open stream" in html["reason"]
    corrupt = wait_for(lambda: (s := status(client, "corrupt"))["reason"] and
                       "020.jpg" in s["reason"] and s, 30, what="the corrupt frame's status")
    assert "cannot decode frame" in corrupt["reason"] and corrupt["state"] == "lost"
    # frames of three sizes are all scored (each prepared the one way, heatmaps at each
    # size), unless a busy machine had the camera sampled down (then they are counted so).
    # A slow machine may still be scoring the frames queued when the recording ended: the
    # wait includes those.
    def sizes_done():
        view = client.get("/api/cameras/sizes").json()
        return view["status"]["state"] == "ended" and \
            view["frames_scored"] + view["frames_sampled_out"] >= 55 and view
    sizes = wait_for(sizes_done, 60, what="the changing-size recording to be scored")
    assert sizes["frames_in"] == SIZES_FRAMES and sizes["frames_dropped"] == 0
    assert sizes["frames_scored"] + sizes["frames_sampled_out"] >= 55
    # a third of the frames the service kept for scoring (all 60 where nothing is sampled)
    assert sizes["frames_scored"] >= (sizes["frames_in"] - sizes["frames_sampled_out"]) / 3
    # the good camera carries on: a quarter or more of the frames it kept meanwhile scored
    good = client.get("/api/cameras/good").json()
    kept = (good["frames_in"] - good["frames_sampled_out"]) - \
        (good_before["frames_in"] - good_before["frames_sampled_out"])
    scored = good["frames_scored"] - good_before["frames_scored"]
    assert kept > 0 and scored > 0.25 * kept
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["inference_error"] is None
    assert ready["cameras"]["good"] in ("live", "learning")
