"""Per-camera models: cameras running different models in one inference loop score exactly
as each would alone; the model folder is listed with its sidecars; a camera's model changes
through the API without a restart, and a model that fails its sidecar check is refused (422)
with the camera keeping its own.

Two real models ship: the default (fine-tuned, staggered parts) and the Chong & Tay reference
(full-clip graph), so "different models" here differ in weights and in variant.
"""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import wait_for, write_config
from test_pipeline import RecordingHub, feed, grabbed

from clipwatch.config import AlertConfig, CameraConfig, LiveConfig, load_config
from clipwatch.model.reconstructors import load_model
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.replay import replay, replay_targets
from clipwatch.server.app import create_app
from clipwatch.server.event_store import EventStore
from clipwatch.server.inference_loop import InferenceLoop, by_model
from clipwatch.server.metrics import Metrics
from clipwatch.server.pipeline import CameraPipeline, Services
from clipwatch.stream.sources import open_source

REFERENCE = DEFAULT_MODEL.with_name("ucsd_ped2_chong_tay.onnx")


@pytest.fixture(scope="module")
def models():
    return load_model(DEFAULT_MODEL), load_model(REFERENCE)


def test_two_cameras_with_two_models_score_as_each_would_alone(models, sample_clip, tmp_path):
    with open_source(sample_clip) as source:
        frames = list(source)[:40]
    default, reference = models
    hubs = {"a": RecordingHub(), "b": RecordingHub()}
    pipelines = []
    for camera, model in (("a", default), ("b", reference)):
        services = Services(default, EventStore(tmp_path / camera), hubs[camera], Metrics(),
                            AlertConfig(), LiveConfig(frame_queue=20), 85, threading.Event())
        pipelines.append(CameraPipeline(CameraConfig(id=camera, source=str(sample_clip)),
                                        services, model=model))
    loop = InferenceLoop(pipelines[0].s, lambda: pipelines)
    items = grabbed(frames)
    for start in range(0, len(items), 10):  # both cameras' clips are due in every pass
        for pipeline in pipelines:
            for item in items[start:start + 10]:
                pipeline.grabber.queue.put(item)
        loop.run_once()
    for camera, model in (("a", default), ("b", reference)):
        served = [m["error"] for m in hubs[camera].scores()]
        assert len(served) == len(frames)
        (alone,) = replay(replay_targets(str(sample_clip)), model, show_progress=False).clips
        np.testing.assert_allclose(served, alone.errors[:len(frames)], rtol=1e-6)
    errors = [np.array([m["error"] for m in hubs[c].scores()]) for c in "ab"]
    assert np.abs(errors[0] - errors[1]).max() > 1.0  # the two models really differ


def test_clips_are_grouped_by_model_across_cameras(models, sample_clip, tmp_path):
    default, reference = models
    services = Services(default, EventStore(tmp_path), RecordingHub(), Metrics(),
                        AlertConfig(), LiveConfig(), 85, threading.Event())
    cams = [CameraPipeline(CameraConfig(id=c, source=str(sample_clip)), services, model=m)
            for c, m in (("a", default), ("b", reference), ("c", default))]
    work = [(cams[0], 1), (cams[1], 2), (cams[2], 3), (cams[1], 4)]
    groups = by_model(work)
    assert [[r for _, r in g] for g in groups] == [[1, 3], [2, 4]]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A model folder with the reference model and a copy whose sidecar does not match."""
    folder = tmp_path_factory.mktemp("models")
    for suffix in (".onnx", ".json"):
        shutil.copy(REFERENCE.with_suffix(suffix), folder / f"street{suffix}")
    shutil.copy(REFERENCE, folder / "broken.onnx")
    sidecar = json.loads(REFERENCE.with_suffix(".json").read_text())
    sidecar["input"]["size"] = 128  # the graph takes 227
    (folder / "broken.json").write_text(json.dumps(sidecar))
    return folder


@pytest.fixture
def service_app(model_folder, sample_clip, tmp_path):
    camera = CameraConfig(id="gate", source=str(sample_clip), loop=True, fps=20)
    path = write_config(tmp_path, [camera])
    config = load_config(path)
    config.model.folder = model_folder
    app = create_app(config, path)
    with TestClient(app) as client:
        yield client, app.state.service, path


def test_the_model_folder_is_listed_with_sidecars_and_problems(service_app, model_folder):
    client, _, _ = service_app
    listed = {m["name"]: m for m in client.get("/api/models").json()}
    assert set(listed) == {"street.onnx", "broken.onnx"}
    assert listed["street.onnx"]["error"] is None
    assert listed["street.onnx"]["calibration"]["e_hi"] > 0
    assert listed["street.onnx"]["cameras"] == [] and not listed["street.onnx"]["loaded"]
    assert "does not match the sidecar" in listed["broken.onnx"]["error"]


def test_a_model_swap_takes_effect_without_a_restart(service_app):
    client, service, path = service_app
    before = service.pipelines["gate"]
    wait_for(lambda: before.frames_scored > 15, 60, what="scores with the default model")
    own = {"e_lo": 1.0, "e_hi": 2.0, "threshold": 0.5}  # constants of the default model
    assert client.patch("/api/cameras/gate", json={"calibration": own}).status_code == 200
    before = service.pipelines["gate"]
    answer = client.patch("/api/cameras/gate", json={"model": "street.onnx"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"].endswith("street.onnx")
    # The old model's constants are dropped: the new model's calibration is in force.
    assert answer.json()["calibration"] is None
    street = service.pipelines["gate"].model.sidecar.calibration
    assert answer.json()["active_calibration"]["e_hi"] == pytest.approx(street.e_hi)
    after = service.pipelines["gate"]
    assert after is not before and after.model.detector.path.name == "street.onnx"
    assert after.model.variant == "full"
    wait_for(lambda: after.frames_scored > 15, 60, what="scores with the new model")
    assert "street.onnx" in client.get("/readyz").json()["models_loaded"]
    listed = {m["name"]: m for m in client.get("/api/models").json()}
    assert listed["street.onnx"]["cameras"] == ["gate"] and listed["street.onnx"]["loaded"]
    assert "street.onnx" in path.read_text()  # written back to the config file
    # Back to the service-wide model: the street model is let go.
    assert client.patch("/api/cameras/gate", json={"model": None}).status_code == 200
    assert service.pipelines["gate"].model is service.model
    assert "street.onnx" not in client.get("/readyz").json()["models_loaded"]


@pytest.mark.parametrize("name, reason", [
    ("broken.onnx", "does not match the sidecar"),
    ("nothere.onnx", "no model"),
    ("../../etc/passwd", "no model"),  # outside the model folder
    (str(DEFAULT_MODEL.with_suffix(".json")), "no model"),
])
def test_a_model_that_cannot_be_used_is_refused_and_the_camera_keeps_its_own(
        service_app, name, reason):
    client, service, _ = service_app
    before = service.pipelines["gate"]
    answer = client.patch("/api/cameras/gate", json={"model": name})
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    assert service.pipelines["gate"] is before and before.model is service.model
    assert service.camera("gate").model is None


def test_an_alert_names_the_model_that_raised_it(models, sample_clip, tmp_path):
    _, reference = models
    from test_pipeline import make_pipeline

    pipeline, loop, hub = make_pipeline(reference, tmp_path, sample_clip, threshold=1.0)
    with open_source(sample_clip) as source:
        frames = list(source)[:30]
    feed(pipeline, loop, grabbed(frames))
    starts = [m for m in hub.messages if m["type"] == "alert" and m["event"] == "start"]
    assert starts and starts[0]["alert"]["model"] == "ucsd_ped2_chong_tay.onnx"
