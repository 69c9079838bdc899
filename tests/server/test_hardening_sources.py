"""Attacks through camera sources on a real `clipwatch serve` (uvicorn on loopback).

- Strange sources: a named pipe, /dev/zero and /dev/urandom added through the API are refused
  (422), and so are they from the config file and the command line (one line, at once). A
  source that passes every check and then hangs in its open (a stream server that accepts and
  never answers) holds up no other camera: a looping video file (reopened by FFmpeg at every
  loop) and an RTSP camera keep scoring at their own rate, a video camera added meanwhile
  goes live, and the hung camera, deleted, leaves no thread behind. Before the fix OpenCV's
  FFmpeg backend held one process-wide lock across every open.
- Bounds: 100 cameras added and removed give their memory back; the API refuses cameras
  beyond server.max_cameras; a source of 8000x8000 frames is downscaled before its frames
  are queued, and costs a bounded peak.
- Probing: loopback and link-local stream URLs added through the API are refused with one
  message, at once, whether a port there is open or closed; viewers read a generic reason for
  a camera whose file is missing, unreadable or empty, admins the error itself.

Rates are compared with the same camera's rate before the attack, never with a fixed number.
What was measured goes to test-artifacts/hardening-sources-*.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from server_helpers import (
    ServerProcess,
    SilentServer,
    free_port,
    parse_frame,
    ped2_clip01,
    wait_for,
)
from websockets.sync.client import connect

from clipwatch.config import ApiToken, AuthConfig, CameraConfig, Config, save_config
from clipwatch.server.auth import hash_token

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN, VIEWER = "hardening-admin-0123456789abcdef", "hardening-viewer-0123456789abcdef"
HUNG_OPEN_TIMEOUT_S = 40.0  # the hung camera's open gives up after this long
HANG_WINDOW_S = 15.0  # rates are measured this long while it hangs
GENERIC_OPEN_FAILURE = "cannot open the source"
SETTLE_S = 10.0  # after a removal, memory is measured this much later
RETURNED_WITHIN_MB = 150  # a removed camera's memory: back to the start within this


# -- a real server and its API ---------------------------------------------------------------


def configure(section, **fields) -> None:
    for name, value in fields.items():
        setattr(section, name, value)


def start_server(folder: Path, cameras: list[CameraConfig], auth: AuthConfig | None = None,
                 **server_fields) -> ServerProcess:
    config = Config(cameras=cameras)
    config.storage.dir = folder / "store"
    port = free_port()
    config.server.port = port
    configure(config.server, **server_fields)
    if auth is not None:
        config.auth = auth
    path = folder / "clipwatch.yaml"
    save_config(config, path)
    return ServerProcess(path, port, folder / "serve.log").start(timeout=120)


def stop_server(server: ServerProcess) -> None:
    try:
        server.stop()
    except subprocess.TimeoutExpired:  # a reader blocked for good (the bug) delays the exit
        server.stop(kill=True)


def api(server: ServerProcess, method: str, path: str, body=None, token: str | None = None):
    """(status, JSON answer) of one request."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def camera(server, camera_id, token=None) -> dict:
    status, view = api(server, "GET", f"/api/cameras/{camera_id}", token=token)
    assert status == 200, view
    return view


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss_mb(server) -> float:
    return proc_status(server.process.pid, "VmRSS") / 1024


def peak_rss_mb(server) -> float:
    return proc_status(server.process.pid, "VmHWM") / 1024


def thread_names(server) -> list[str]:
    names = []
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            names.append((task / "comm").read_text().strip())
    return names


def scored_rate(server, camera_ids: list[str], seconds: float,
                counter: str = "frames_scored") -> dict[str, float]:
    """Frames scored (or another counter) per second, per camera, over the next `seconds`."""
    before = {c: camera(server, c)[counter] for c in camera_ids}
    started = time.monotonic()
    time.sleep(seconds)
    after = {c: camera(server, c)[counter] for c in camera_ids}
    elapsed = time.monotonic() - started
    return {c: round((after[c] - before[c]) / elapsed, 2) for c in camera_ids}


def save_facts(name: str, facts: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"hardening-sources-{name}.json").write_text(json.dumps(facts, indent=2))
    print(name, json.dumps(facts))


def write_video(frames: Path, out: Path, count: int = 40, fps: float = 10.0) -> Path:
    first = cv2.imread(str(frames / "000.jpg"))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                             (first.shape[1], first.shape[0]))
    for i in range(count):
        writer.write(cv2.imread(str(frames / f"{i:03d}.jpg")))
    writer.release()
    assert cv2.VideoCapture(str(out)).isOpened()
    return out


# -- 1. strange sources ------------------------------------------------------------------------


def rtsp_camera(shared_data: Path):
    """GStreamer's RTSP server on Ped2 frames (as in test_rtsp.py), or None without it."""
    from test_rtsp import RtspServer, gstreamer_available

    if not gstreamer_available():
        if os.environ.get("CI"):
            pytest.fail("GStreamer's RTSP server is missing in CI (scripts/system_deps.sh)")
        return None
    return RtspServer(ped2_clip01(shared_data), free_port()).start()


def test_strange_sources_are_refused_and_a_hung_open_holds_up_no_other_camera(
        shared_data, tmp_path):
    clip = ped2_clip01(shared_data)
    video = write_video(clip, tmp_path / "loop.avi")  # 4 s: FFmpeg reopens it every 4 s
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    silent = SilentServer()
    rtsp = rtsp_camera(shared_data)
    cameras = [CameraConfig(id="loopy", source=str(video), loop=True, fps=10.0),
               # a config-file camera (loopback is the operator's choice there), off for now
               CameraConfig(id="hung", source=f"http://127.0.0.1:{silent.port}/video",
                            enabled=False, open_timeout_s=HUNG_OPEN_TIMEOUT_S)]
    if rtsp is not None:
        cameras.append(CameraConfig(id="rtsp", source=f"rtsp://127.0.0.1:{rtsp.port}/stream"))
    watched = [c.id for c in cameras if c.id != "hung"]
    server = start_server(tmp_path, cameras)
    facts: dict = {"rtsp": rtsp is not None}
    try:
        for camera_id in watched:
            wait_for(lambda c=camera_id: camera(server, c)["frames_scored"] > 20, 60,
                     what=f"{camera_id} to score")
        facts["rate_alone"] = scored_rate(server, watched, HANG_WINDOW_S)
        assert not [n for n in thread_names(server) if n == "grab-hung"]

        # the hung camera starts: its open connects and waits for an answer that never comes
        assert api(server, "PATCH", "/api/cameras/hung", {"enabled": True})[0] == 200
        wait_for(lambda: silent.open_connections() > 0, 10, what="the hung camera to connect")
        hang_started = time.monotonic()
        # a video camera added meanwhile opens at once (it is removed again before the rates
        # are measured: a third camera would take its share of the scoring capacity)
        status, _ = api(server, "POST", "/api/cameras",
                        {"id": "late", "source": str(video), "loop": True, "fps": 10.0})
        facts["late_added"] = status
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and status == 201 and \
                camera(server, "late")["status"]["state"] not in ("live", "learning"):
            time.sleep(0.2)
        late = camera(server, "late") if status == 201 else {"status": {"state": "absent"}}
        facts["late_state"] = late["status"]["state"]
        facts["late_live_after_s"] = round(time.monotonic() - hang_started, 1)
        api(server, "DELETE", "/api/cameras/late")
        time.sleep(3)  # the capacity plan settles back
        facts["read_rate_while_hung"] = scored_rate(server, watched, 1.0, "frames_in")
        facts["rate_while_hung"] = scored_rate(server, watched, HANG_WINDOW_S)
        facts["hung_state"] = camera(server, "hung")["status"]["state"]
        facts["hung_connection_open"] = silent.open_connections()
        facts["seconds_into_the_hang"] = round(time.monotonic() - hang_started, 1)

        # deleted, the hung camera leaves nothing behind once its open gives up
        started = time.monotonic()
        facts["delete_status"] = api(server, "DELETE", "/api/cameras/hung")[0]
        facts["delete_s"] = round(time.monotonic() - started, 2)
        wait_for(lambda: "grab-hung" not in thread_names(server) and
                 silent.open_connections() == 0, HUNG_OPEN_TIMEOUT_S + 10,
                 what="the hung camera's thread to end and its connection to close")
        facts["hung_gone_after_delete_s"] = round(time.monotonic() - started, 1)

        # strange sources through the API: refused before they reach a decoder
        facts["refused"] = {}
        for camera_id, source in (("fifo", fifo), ("zero", "/dev/zero"),
                                  ("urandom", "/dev/urandom")):
            status, answer = api(server, "POST", "/api/cameras",
                                 {"id": camera_id, "source": str(source)})
            facts["refused"][camera_id] = [status, answer.get("detail")]
        facts["rate_after"] = scored_rate(server, watched, 5.0)
        log = server.log_path.read_text()
    finally:
        stop_server(server)
        silent.close()
        if rtsp is not None:
            rtsp.stop()
    save_facts("hung-open", facts)

    assert facts["late_added"] == 201
    for camera_id in watched:  # each keeps at least half its own rate while one open hangs
        assert facts["rate_while_hung"][camera_id] >= 0.5 * facts["rate_alone"][camera_id], facts
    assert facts["late_state"] in ("live", "learning"), facts
    assert facts["hung_state"] == "connecting" and facts["hung_connection_open"] == 1, facts
    assert facts["delete_status"] == 204 and facts["delete_s"] < 3.0, facts
    for camera_id, (status, detail) in facts["refused"].items():
        assert status == 422, (camera_id, detail)
        assert ("named pipe" if camera_id == "fifo" else "character device") in detail
    for camera_id in watched:
        assert facts["rate_after"][camera_id] >= 0.5 * facts["rate_alone"][camera_id], facts
    assert "Traceback" not in log


def test_fifos_and_devices_in_the_config_or_on_the_command_line_are_one_line_errors(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    config = tmp_path / "clipwatch.yaml"
    config.write_text(f"cameras:\n  - id: pipe\n    source: {fifo}\n")
    runs = {
        "config": ["serve", "--config", str(config), "--port", str(free_port())],
        "source": ["serve", "--source", "/dev/zero", "--port", str(free_port())],
        "replay": ["replay", "/dev/urandom"],
    }
    for name, args in runs.items():
        started = time.monotonic()
        try:
            run = subprocess.run([sys.executable, "-m", "clipwatch", *args],
                                 capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"clipwatch {name} with a FIFO/device ran on for 30 s")
        assert run.returncode != 0, name
        message = run.stderr.strip()
        assert "\n" not in message and "Traceback" not in message, message
        assert ("named pipe" if name == "config" else "character device") in message, message
        assert time.monotonic() - started < 20, name


# -- 2. probing the server's network and disk ---------------------------------------------------


@pytest.fixture(scope="module")
def secured_server(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    auth = AuthConfig(tokens=[ApiToken(name="ops", sha256=hash_token(ADMIN), role="admin"),
                              ApiToken(name="wall", sha256=hash_token(VIEWER), role="viewer")])
    server = start_server(folder, [], auth=auth)
    yield server
    stop_server(server)


def test_loopback_and_link_local_streams_are_refused_alike_open_port_or_not(secured_server):
    server = secured_server
    silent = SilentServer()
    closed = free_port()
    sources = {
        "open": f"rtsp://127.0.0.1:{silent.port}/stream",
        "closed": f"rtsp://127.0.0.1:{closed}/stream",
        "name": f"http://localhost:{silent.port}/video",
        "v6": f"http://[::1]:{closed}/video",
        "number": f"http://2130706433:{silent.port}/video",  # 127.0.0.1 as one number
        "meta": "http://169.254.169.254/latest/meta-data/",
    }
    answers, took = {}, {}
    try:
        for key, source in sources.items():
            started = time.monotonic()
            answers[key] = api(server, "POST", "/api/cameras",
                               {"id": f"probe-{key}", "source": source}, ADMIN)
            took[key] = round(time.monotonic() - started, 3)
        # without the refusal, how long each camera took to fail told open ports from closed
        lost_after = {}
        for key in ("open", "closed"):
            if answers[key][0] == 201:
                started = time.monotonic()
                wait_for(lambda k=key: camera(server, f"probe-{k}", ADMIN)["status"]["state"]
                         == "lost", 30, interval=0.05, what=f"{key} to fail")
                lost_after[key] = round(time.monotonic() - started, 2)
        accepted = silent.open_connections()
    finally:
        silent.close()
        for key in sources:
            api(server, "DELETE", f"/api/cameras/probe-{key}", token=ADMIN)
    save_facts("loopback", {"answers": answers, "seconds": took, "lost_after": lost_after,
                            "connections_to_the_open_port": accepted})
    details = {answer[1].get("detail") if isinstance(answer[1], dict) else None
               for answer in answers.values()}
    assert all(status == 422 for status, _ in answers.values()), answers
    assert len(details) == 1 and "denied_networks" in details.pop()  # one message for all
    assert max(took.values()) < 1.0, took  # refused at once: nothing is tried
    assert accepted == 0


def test_viewers_read_a_generic_reason_for_a_missing_or_unreadable_file(secured_server,
                                                                        tmp_path):
    server = secured_server
    empty = tmp_path / "empty"
    empty.mkdir()
    sources = {"missing": str(tmp_path / "nowhere" / "lobby.mp4"),
               "secret": "/etc/shadow",  # exists; not a video
               "folder": str(empty)}  # exists; no frames
    try:
        for key, source in sources.items():
            status, answer = api(server, "POST", "/api/cameras",
                                 {"id": f"disk-{key}", "source": source}, ADMIN)
            assert status == 201, answer
        def reason_when_lost(camera_id: str, token: str) -> str:
            # between retries a camera shows as connecting (no reason): wait for a failure
            return wait_for(lambda: (s := camera(server, camera_id, token)["status"])["state"]
                            == "lost" and s["reason"], 30, interval=0.1,
                            what=f"{camera_id} to fail")
        seen = {key: reason_when_lost(f"disk-{key}", VIEWER) for key in sources}
        admin = {key: reason_when_lost(f"disk-{key}", ADMIN) for key in sources}
        listed = {c["id"]: c["status"]["reason"]
                  for c in api(server, "GET", "/api/cameras", token=VIEWER)[1]
                  if c["status"]["state"] == "lost"}
    finally:
        for key in sources:
            api(server, "DELETE", f"/api/cameras/disk-{key}", token=ADMIN)
    save_facts("viewer-reasons", {"viewer": seen, "admin": admin})
    assert set(seen.values()) == {GENERIC_OPEN_FAILURE}, seen
    assert set(listed.values()) <= {GENERIC_OPEN_FAILURE}, listed
    assert "does not exist" in admin["missing"]  # admins still learn what is wrong
    assert admin["secret"] != admin["folder"]


# -- 3. bounds --------------------------------------------------------------------------------


def test_a_hundred_cameras_added_and_removed_give_their_memory_back(shared_data, tmp_path):
    clip = ped2_clip01(shared_data)
    real = CameraConfig(id="real", source=str(clip.parent / "02"), loop=True, fps=10.0)
    server = start_server(tmp_path, [real], max_cameras=101)
    facts: dict = {}
    try:
        wait_for(lambda: camera(server, "real")["frames_scored"] > 30, 60, what="real to score")
        time.sleep(5)
        facts["rss_start_mb"] = round(rss_mb(server))
        facts["threads_start"] = len(thread_names(server))
        statuses = [api(server, "POST", "/api/cameras",
                        {"id": f"c{i:03d}", "source": str(clip.parent / "03"), "loop": True,
                         "fps": 5.0})[0] for i in range(100)]
        facts["added"] = statuses.count(201)
        status, answer = api(server, "POST", "/api/cameras",
                             {"id": "one-too-many", "source": str(clip), "enabled": False})
        facts["beyond_limit"] = [status, answer.get("detail")]
        added = {f"c{i:03d}" for i in range(100)}
        wait_for(lambda: all(c["frames_in"] > 0 for c in api(server, "GET", "/api/cameras")[1]
                             if c["id"] in added), 120, interval=1.0,
                 what="the 100 cameras to read frames")
        time.sleep(10)  # their queues, clips and caches fill
        facts["rss_100_mb"] = round(rss_mb(server))
        facts["threads_100"] = len(thread_names(server))
        for i in range(100):
            api(server, "DELETE", f"/api/cameras/c{i:03d}")
        if status == 201:
            api(server, "DELETE", "/api/cameras/one-too-many")
        time.sleep(SETTLE_S)  # memory goes back within seconds (or never: the bug)
        facts["rss_after_mb"] = round(rss_mb(server))
        facts["threads_after"] = len(thread_names(server))
        facts["real_still_scoring"] = scored_rate(server, ["real"], 5.0)["real"]
    finally:
        stop_server(server)
    save_facts("hundred-cameras", facts)
    assert facts["added"] == 100
    assert facts["beyond_limit"][0] == 409 and "max_cameras" in facts["beyond_limit"][1]
    assert facts["rss_after_mb"] - facts["rss_start_mb"] <= RETURNED_WITHIN_MB, facts
    assert facts["threads_after"] <= facts["threads_start"] + 5, facts
    assert facts["real_still_scoring"] > 0


def test_the_camera_limit_holds_by_default(secured_server, shared_data):
    """32 cameras by default: the 33rd is refused with 409, before it costs anything."""
    server = secured_server
    source = str(ped2_clip01(shared_data))
    ids = [f"lim{i:02d}" for i in range(33)]
    try:
        answers = [api(server, "POST", "/api/cameras",
                       {"id": camera_id, "source": source, "enabled": False}, ADMIN)
                   for camera_id in ids]
    finally:
        for camera_id in ids:
            api(server, "DELETE", f"/api/cameras/{camera_id}", token=ADMIN)
    assert [status for status, _ in answers[:32]] == [201] * 32
    assert answers[32][0] == 409 and "max_cameras" in answers[32][1]["detail"]


def huge_frames(folder: Path, count: int = 12, side: int = 8000) -> Path:
    """`count` frames (enough for a clip before the folder loops) of 3 distinct images."""
    folder.mkdir()
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    for i in range(3):  # smooth shapes: small JPEGs that decode to 192 MB each
        image = np.zeros((side, side, 3), np.uint8)
        image[..., 0] = (x * 255).astype(np.uint8)
        image[..., 1] = (y * 255).astype(np.uint8)
        cv2.circle(image, (1000 + 2000 * i, 4000), 800, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    for i in range(3, count):
        shutil.copy(folder / f"{i % 3:03d}.jpg", folder / f"{i:03d}.jpg")
    return folder


def test_an_8000x8000_source_is_downscaled_and_its_memory_returned(shared_data, tmp_path):
    frames = huge_frames(tmp_path / "huge")
    real = CameraConfig(id="real", source=str(ped2_clip01(shared_data).parent / "02"),
                        loop=True, fps=10.0)  # scoring runs before: the start is warm
    server = start_server(tmp_path, [real])
    facts: dict = {}
    try:
        wait_for(lambda: camera(server, "real")["frames_scored"] > 30, 60, what="real to score")
        time.sleep(5)
        facts["rss_start_mb"] = round(rss_mb(server))
        facts["peak_start_mb"] = round(peak_rss_mb(server))
        status, answer = api(server, "POST", "/api/cameras",
                             {"id": "huge", "source": str(frames), "loop": True, "fps": 2.0})
        assert status == 201, answer
        with connect(server.url.replace("http", "ws") + "/ws", max_size=2**26) as ws:
            json.loads(ws.recv(timeout=10))  # hello
            ws.send(json.dumps({"type": "subscribe", "cameras": ["huge"], "video": True,
                                "overlay": False}))
            deadline = time.monotonic() + 90
            shape = None
            while shape is None and time.monotonic() < deadline:
                message = ws.recv(timeout=90)
                if isinstance(message, bytes):
                    _, jpeg = parse_frame(message)
                    shape = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape
        facts["frame_shape_seen_by_viewers"] = list(shape) if shape else None
        wait_for(lambda: camera(server, "huge")["frames_in"] >= 25, 90, interval=1.0,
                 what="25 huge frames read")
        facts["frames_in"] = camera(server, "huge")["frames_in"]
        facts["rss_running_mb"] = round(rss_mb(server))
        facts["peak_mb"] = round(peak_rss_mb(server))
        assert api(server, "DELETE", "/api/cameras/huge")[0] == 204
        time.sleep(SETTLE_S)
        facts["rss_after_mb"] = round(rss_mb(server))
    finally:
        stop_server(server)
        shutil.rmtree(frames, ignore_errors=True)
    save_facts("huge-frames", facts)
    height, width = facts["frame_shape_seen_by_viewers"][:2]
    assert height * width <= 1920 * 1080, facts  # live.max_frame_pixels, the default
    # a decoded 8000x8000 frame is 192 MB: a few at a time, never a queue of them
    assert facts["peak_mb"] - facts["rss_start_mb"] <= 1024, facts
    assert facts["rss_after_mb"] - facts["rss_start_mb"] <= RETURNED_WITHIN_MB, facts
