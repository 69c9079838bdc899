"""Event clips through the whole service: the real app (TestClient) replays UCSD Ped2 test 1
with clips on, every frame scored at the clip's own 10 fps (the camera's learned baseline
then holds still and the cyclist raises the alert). A few seconds into the alert the camera
is disabled through the API: its clip ends with the frames it has, starts the pre-roll
before the alert, is served with range requests, and is deleted by retention.
"""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import ABNORMAL_FROM_INDEX, ped2_clip01, replay_camera, wait_for, write_config

from clipwatch.config import ClipConfig, load_config
from clipwatch.server.app import create_app

PRE, POST = 2.0, 1.0
FPS = 10.0
ALERT_S = 3.0  # how long the alert runs before the camera is disabled


@pytest.fixture(scope="module")
def clipped(shared_data, tmp_path_factory):
    """(client, service, the event with its clip, the clip as PyAV reads it)."""
    folder = tmp_path_factory.mktemp("clips")
    camera = replay_camera(ped2_clip01(shared_data), fps=FPS, stride=1,
                           clip=ClipConfig(pre_seconds=PRE, post_seconds=POST))
    app = create_app(load_config(write_config(folder, [camera])))
    with TestClient(app) as client:
        def events():
            return client.get("/api/events", params={"camera": "ped2"}).json()["items"]
        first = wait_for(lambda: events()[-1:], 40, what="an alert")[0]
        wait_for(lambda: client.get(f"/api/events/{first['id']}").json()["updated_at"]
                 >= first["started_at"] + ALERT_S, 20, what="the alert to go on")
        # stopped mid-alert: the alert ends now, the clip with the frames it has
        response = client.patch("/api/cameras/ped2", json={"enabled": False})
        assert response.status_code == 200 and response.json()["clip"]["pre_seconds"] == PRE
        event = wait_for(lambda: next((e for e in events() if e["id"] == first["id"]
                                       and e["clip_url"]), None), 20, what="the clip")
        path = app.state.service.store.clip_path(event["id"])
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            clip = {"start": float(container.metadata["CLIPWATCH_START"]),
                    "times": [float(f.pts * f.time_base) for f in container.decode(stream)],
                    "duration": container.duration / 1e6, "size": (stream.width, stream.height),
                    "path": path}
        yield client, app.state.service, event, clip


def test_the_alert_clip_starts_the_pre_roll_before_the_alert(clipped):
    _, _, event, clip = clipped
    assert event["start_frame"] >= ABNORMAL_FROM_INDEX  # the cyclist, after the baseline
    assert event["state"] == "closed"
    assert event["clip_url"] == f"/api/events/{event['id']}/clip.webm"
    assert clip["path"].name == f"{event['id']}-clip.webm"
    assert clip["path"].parent.name == "ped2" and clip["path"].parent.parent.name == "clips"
    # its first frame: the alert's start less the pre-roll, within a frame or two (a frame
    # the camera dropped is not in the ring)
    start = clip["start"]
    assert event["started_at"] - PRE - 1e-3 <= start <= event["started_at"] - PRE + 2 / FPS
    # then the frames at their own times, to the last one before the camera stopped
    times = np.array(clip["times"])
    assert (np.diff(times) > 0).all() and np.median(np.diff(times)) == pytest.approx(0.1, abs=0.02)
    assert times[-1] >= PRE + ALERT_S - 0.5 and start + times[-1] <= event["ended_at"]
    assert clip["duration"] == pytest.approx(times[-1] + times[-1] - times[-2], abs=0.002)
    assert clip["size"] == (360, 240)  # Ped2's own frames (under the clip's 480 lines)


def test_the_clip_is_served_with_range_requests(clipped):
    client, _, event, _ = clipped
    whole = client.get(event["clip_url"])
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/webm"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    part = client.get(event["clip_url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    # the format it is not in, an event without a clip, an id out of range: one-line 4xx
    other = client.get(f"/api/events/{event['id']}/clip.mp4")
    assert other.status_code == 404 and other.json() == {
        "detail": f"event {event['id']} has no clip.mp4"}
    assert client.get("/api/events/99999/clip.webm").status_code == 404
    assert client.get(f"/api/events/{2**63}/clip.webm").status_code == 422


def test_retention_deletes_the_clip_and_keeps_the_event(clipped):
    client, service, event, clip = clipped
    retention = service.config.storage.retention_days
    assert service.store.prune(retention, None, now=time.time()) == 0  # young: kept
    later = time.time() + (retention + 1) * 86400
    assert service.store.prune(retention, None, now=later) >= 1
    assert not clip["path"].exists()
    assert client.get(event["clip_url"]).status_code == 404
    kept = client.get(f"/api/events/{event['id']}").json()
    assert kept["clip_url"] is None and kept["id"] == event["id"]
