"""Masks and zones: the config refuses bad polygons in one line; on real footage (UCSD Ped2
test 1, a cyclist from frame 61) a mask over the cyclist's path suppresses the alert and a
zone around it names the zone on its alert; the API sets them (422 for a polygon outside
the frame, with fewer than three points or self-intersecting; 409 before the camera's
frame size is known), writes them to the config and applies them at once.

The cyclist's path is read from the official pixel ground truth (its abnormal pixels over
the whole clip, in the frame's 360x240 coordinates), not guessed.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import ABNORMAL_FROM_INDEX, replay_camera, wait_for, write_config
from test_pipeline import RecordingHub, feed, grabbed

from clipwatch.config import (
    AlertConfig,
    CameraConfig,
    ConfigError,
    LiveConfig,
    load_config,
)
from clipwatch.model.reconstructors import load_model
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.server.app import create_app
from clipwatch.server.event_store import EventStore
from clipwatch.server.inference_loop import InferenceLoop
from clipwatch.server.metrics import Metrics
from clipwatch.server.pipeline import CameraPipeline, Services
from clipwatch.stream.sources import open_source
from clipwatch.stream.ucsd_masks import find_mask_dirs, mask_files

SQUARE = [[10, 10], [60, 10], [60, 50], [10, 50]]
# 120 frames: the 60 the camera learns its baseline from, then 60 of the cyclist (the
# unmasked camera's alert opens at frame 96).
FRAMES = 120


# -- config --------------------------------------------------------------------------------


def test_masks_and_zones_load_from_the_config(tmp_path):
    path = tmp_path / "clipwatch.yaml"
    path.write_text(
        "cameras:\n"
        "  - id: gate\n    source: /data/gate.mp4\n"
        "    masks: [[[0, 0], [120, 0], [120, 60], [0, 60]]]\n"
        "    zones:\n"
        "      - {name: door, polygon: [[200, 80], [260, 80], [260, 200], [200, 200]],"
        " threshold: 0.7}\n")
    (camera,) = load_config(path).cameras
    assert camera.masks == [[(0, 0), (120, 0), (120, 60), (0, 60)]]
    (door,) = camera.zones
    assert door.name == "door" and door.threshold == 0.7 and len(door.polygon) == 4


@pytest.mark.parametrize("entry, message", [
    ("masks: [[[0, 0], [10, 0]]]", "at least 3 points"),
    ("masks: [[[0, 0], [10, 10], [10, 0], [0, 10]]]", "self-intersecting"),
    ("masks: [[[0, 0], [10, 0], [20, 0]]]", "self-intersecting"),
    ("masks: [[[0, 0], [10, 0], [10, 10], [0, 0]]]", "repeat a point"),
    ("masks: [[[-5, 0], [10, 0], [10, 10]]]", "masks.0.0.0"),
    ("masks: [[[0.5, 0], [10, 0], [10, 10]]]", "masks.0.0.0"),
    ("masks: [[[.nan, 0], [10, 0], [10, 10]]]", "masks.0.0.0"),
    ("masks: [[[0, 0, 3], [10, 0], [10, 10]]]", "masks.0.0"),
    ("zones: [{name: a, polygon: [[0, 0], [9, 0], [9, 9]]},"
     " {name: a, polygon: [[0, 0], [8, 0], [8, 8]]}]", "zone name 'a' is used twice"),
    ("zones: [{name: '', polygon: [[0, 0], [9, 0], [9, 9]]}]", "zones.0.name"),
    ("zones: [{name: door, polygon: [[0, 0], [9, 0], [9, 9]], threshold: 2}]",
     "zones.0.threshold"),
    ("zones: [{name: door, polygon: [[0, 0], [9, 0], [9, 9]], colour: red}]",
     "zones.0.colour"),
    ("masks: [" + ", ".join(["[[0, 0], [9, 0], [9, 9]]"] * 17) + "]", "masks"),
    ("masks: [[" + ", ".join(f"[{i}, {i * i}]" for i in range(65)) + "]]", "at most 64"),
])
def test_bad_polygons_are_refused_in_one_line(tmp_path, entry, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"cameras:\n  - id: gate\n    source: /data/gate.mp4\n    {entry}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and "\n" not in str(info.value)


# -- alerts on real footage -----------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def frames(sample_clip):
    with open_source(sample_clip) as source:
        return list(source)[:FRAMES]


@pytest.fixture(scope="module")
def cyclist_path(shared_data):
    """The box around every abnormal pixel of Ped2 test 1 (the cyclist's whole ride), with a
    5-pixel margin, as a polygon in frame coordinates."""
    import cv2

    masks = find_mask_dirs(shared_data / "ucsd_ped2_masks" / "UCSDped2")
    union = np.zeros((240, 360), dtype=bool)
    for path in mask_files(masks[1]):
        union |= cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
    ys, xs = np.nonzero(union)
    x0, y0 = max(int(xs.min()) - 5, 0), max(int(ys.min()) - 5, 0)
    x1, y1 = min(int(xs.max()) + 6, 360), min(int(ys.max()) + 6, 240)
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def run_camera(model, tmp_path, sample_clip, frames, **camera):
    """The cyclist's clip through a camera pipeline that learns its baseline from the first
    60 frames (normal in the ground truth), as the demo camera does; every frame scored."""
    hub = RecordingHub()
    services = Services(model, EventStore(tmp_path / "store"), hub, Metrics(), AlertConfig(),
                        LiveConfig(frame_queue=20), 85, threading.Event())
    pipeline = CameraPipeline(CameraConfig(id="ped2", source=str(sample_clip), stride=1,
                                           baseline_frames=ABNORMAL_FROM_INDEX, **camera),
                              services)
    loop = InferenceLoop(services, lambda: [pipeline])
    feed(pipeline, loop, grabbed(frames))
    pipeline.stop()  # closes what is open, stored
    alerts = [m for m in hub.messages if m["type"] == "alert"]
    events, _ = services.store.list()
    return pipeline, hub, alerts, events


def test_a_mask_over_the_cyclists_path_suppresses_the_alert(model, tmp_path, sample_clip,
                                                            frames, cyclist_path):
    _, hub, alerts, events = run_camera(model, tmp_path / "plain", sample_clip, frames)
    assert [a["event"] for a in alerts][:1] == ["start"]  # the cyclist raises one unmasked
    assert alerts[0]["alert"]["start_frame"] >= ABNORMAL_FROM_INDEX
    assert alerts[0]["alert"]["zone"] is None and events[0]["zone"] is None

    pipeline, hub, alerts, events = run_camera(model, tmp_path / "masked", sample_clip,
                                               frames, masks=[cyclist_path])
    assert alerts == [] and events == []
    scores = hub.scores()
    assert len(scores) == FRAMES and scores[-1]["regularity"] is not None  # scored, calm
    assert pipeline.scorer.regions.masked_fraction > 0.2
    assert all(s["zones"] == {} for s in scores)


def test_a_zone_around_the_cyclists_path_names_the_zone_on_its_alert(
        model, tmp_path, sample_clip, frames, cyclist_path):
    zone = {"name": "walkway", "polygon": cyclist_path}
    pipeline, hub, alerts, events = run_camera(model, tmp_path, sample_clip, frames,
                                               zones=[zone])
    zoned = [a for a in alerts if a["alert"]["zone"] == "walkway"]
    assert [a["event"] for a in zoned][:1] == ["start"] and zoned[-1]["event"] == "end"
    assert zoned[0]["alert"]["start_frame"] >= ABNORMAL_FROM_INDEX
    # stored with its zone, beside the camera's own (whole-frame) alert
    assert {e["zone"] for e in events} == {"walkway", None}
    # the zone learned its own baseline from the camera's baseline frames
    own = pipeline.scorer.zone_live["walkway"].calibration
    assert own is not None and own != pipeline.live.calibration
    assert zoned[0]["alert"]["threshold"] == pytest.approx(own.threshold)
    # the score messages carry the zone's regularity
    scores = hub.scores()
    assert scores[-1]["zones"]["walkway"] is not None
    assert scores[0]["zones"] == {"walkway": None}  # warm-up: no verdict yet


def test_a_zone_takes_its_own_threshold_else_the_cameras(model, tmp_path, sample_clip,
                                                         frames, cyclist_path):
    # The camera's threshold is one no frame falls below: neither the camera nor the zone
    # that inherits it raises anything; the zone with a threshold of its own does.
    zones = [{"name": "inherits", "polygon": cyclist_path},
             {"name": "own", "polygon": cyclist_path, "threshold": 0.7}]
    _, _, alerts, _ = run_camera(model, tmp_path, sample_clip, frames, zones=zones,
                                 threshold=-10)
    assert alerts and {a["alert"]["zone"] for a in alerts} == {"own"}
    assert alerts[0]["alert"]["threshold"] == 0.7


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(sample_clip, tmp_path_factory):
    """(client, service, config path): camera ped2 plays the sample clip; 'spare' is
    disabled, so its frame size is never known."""
    folder = tmp_path_factory.mktemp("zones-api")
    path = write_config(folder, [replay_camera(sample_clip, fps=20.0),
                                 replay_camera(sample_clip, camera_id="spare", enabled=False)])
    app = create_app(load_config(path), path)
    with TestClient(app) as client:
        wait_for(lambda: client.get("/api/cameras/ped2").json()["frame_size"], 30,
                 what="the camera's first frame")
        yield client, app.state.service, path


def put_zones(client, body, camera="ped2"):
    return client.put(f"/api/cameras/{camera}/zones", json=body)


def problems(response) -> str:
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " ".join(d["msg"] for d in detail)


@pytest.mark.parametrize("body, message", [
    ({"masks": [[[300, 200], [400, 200], [400, 239]]]}, "(400, 200) lies outside the 360x240"),
    ({"zones": [{"name": "door", "polygon": [[0, 0], [100, 0], [100, 300]]}]},
     "zones.0 (door): point (100, 300) lies outside the 360x240 frame"),
    ({"masks": [[[0, 0], [10, 0]]]}, "at least 3 points"),
    ({"masks": [[[0, 0], [50, 50], [50, 0], [0, 50]]]}, "self-intersecting"),
    ({"zones": [{"name": "door", "polygon": [[0, 0], [50, 50], [50, 0], [0, 50]]}]},
     "self-intersecting"),
    ({"zones": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]},
     "used twice"),
    ({"masks": [SQUARE], "extra": 1}, "Extra inputs"),
    ({"masks": [[[0, 0], [360, 0], [360, 240], [0, 240]]]}, "cover the whole frame"),
    ({"masks": [[[0, 0], [200, 0], [200, 200], [0, 200]]],
      "zones": [{"name": "hidden", "polygon": SQUARE}]}, "zones.0 (hidden): no pixel"),
])
def test_the_api_refuses_bad_polygons_with_a_clear_422(api, body, message):
    client, service, _ = api
    before = service.camera("ped2")
    response = put_zones(client, body)
    assert response.status_code == 422, response.text
    assert message in problems(response)
    assert service.camera("ped2") == before  # nothing changed


def test_polygons_need_a_known_frame_size(api):
    client, _, _ = api
    response = put_zones(client, {"masks": [SQUARE]}, camera="spare")
    assert response.status_code == 409 and "no frame yet" in response.json()["detail"]
    cleared = put_zones(client, {"masks": [], "zones": []}, camera="spare")
    assert cleared.status_code == 200  # removing them needs no frame size
    assert put_zones(client, {"masks": [SQUARE]}, camera="nope").status_code == 404


def test_masks_and_zones_set_through_the_api_apply_at_once_and_are_saved(api):
    client, service, path = api
    old = service.pipelines["ped2"]
    body = {"masks": [SQUARE],
            "zones": [{"name": "door", "polygon": [[200, 80], [260, 80], [260, 200]],
                       "threshold": 0.7}]}
    response = put_zones(client, body)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["masks"] == [SQUARE] and view["zones"][0]["name"] == "door"
    assert view["frame_size"] == [360, 240]  # kept across the restart
    # in the config file, and in the running camera's scorer
    (saved, _spare) = load_config(path).cameras
    assert saved.masks == [[tuple(p) for p in SQUARE]] and saved.zones[0].threshold == 0.7
    pipeline = service.pipelines["ped2"]
    assert pipeline is not old and len(pipeline.scorer.settings.masks) == 1
    assert [z.name for z in pipeline.scorer.settings.zones] == ["door"]
    # other changes keep them
    patched = client.patch("/api/cameras/ped2", json={"name": "Ped2 walkway"}).json()
    assert patched["masks"] == [SQUARE] and patched["zones"][0]["name"] == "door"
    assert put_zones(client, {}).json()["masks"] == []  # empty lists remove them
