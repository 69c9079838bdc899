"""The viewer's "Learn a camera" panel in real headless Chromium against a real server, all
the way from footage to a model on the camera: an admin records a camera's normal footage
from the page; the recording's list item and the tile's bar follow it to the end (the
websocket's 'recording' messages); the last minute is left out, a model learned from footage
too short is refused in the item's result line, the recording is deleted; a second recording
is left out from and stopped while it records.

Then a third recording, long enough to learn from, and a real learning job started from its
Learn form (a `clipwatch learn` child process, a few seconds of training): its list item and
the tile's learning bar follow it (the websocket's 'learning' messages) until it is done, its
figures show beside the model it started from, Activate puts the learned model on the camera
(PATCH) and the camera's Roll back takes it back. The server's model folder is a copy of the
shipped model's in the test's folder, so the learned model lands there, never in weights/.
Same conventions as test_viewer.py (its browser, CSP-safe waits).
"""

from __future__ import annotations

import json
import re
import time

import pytest
from server_helpers import (
    ServerProcess,
    free_port,
    ped2_clip01,
    replay_camera,
    wait_for,
    write_config,
)
from test_learning_service import model_folder_with_the_shipped_model
from test_viewer import ARTIFACTS, INSTRUMENTED, browser, wait_js, watch_errors  # noqa: F401

from clipwatch.config import load_config, save_config
from clipwatch.paths import DEFAULT_MODEL

SHIPPED = DEFAULT_MODEL.name  # the default model's file, copied into the model folder
LEARNED = "ped2-learned"  # the model the job makes: LEARNED.onnx in the model folder
# 30 frames a chunk at 10 frames/s: learning needs four chunks, and one held-out chunk of
# 30 frames gives the 21 clip scores calibration needs at least 20 of (20 frames: 11)
CHUNK_SECONDS = 3.0
JOB_TIMEOUT_S = 300  # a few seconds of training, then exporting, calibrating, judging
# Chromium logs a refused request itself: the refusal this test provokes (too short).
REFUSALS = re.compile(r"status of 422")


@pytest.fixture
def learning_server(shared_data, tmp_path):
    """looping_server (conftest.py) with its own model folder and short footage chunks."""
    # Every frame scored, at the clip's own rate: the default model calls skipped frames
    # abnormal (weights/README.md), which would skew the baseline the camera learns.
    camera = replay_camera(ped2_clip01(shared_data), loop=True, stride=1, fps=10.0)
    path = write_config(tmp_path, [camera])
    config = load_config(path)
    models = model_folder_with_the_shipped_model(tmp_path / "models")
    config.model.path = models / SHIPPED
    config.model.folder = models
    config.learning.chunk_seconds = CHUNK_SECONDS
    save_config(config, path)
    process = ServerProcess(path, free_port(), tmp_path / "serve.log")
    yield process.start()
    process.stop()


def recordings(server) -> dict[str, dict]:
    return {r["id"]: r for r in server.get_json("/api/recordings")}


def tail(path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(none)"


def what_went_on(server, store) -> str:
    """The jobs, the server's log and the jobs' own logs: why a learning job is not done."""
    try:
        jobs = json.dumps(server.get_json("/api/learning"), indent=1)
    except OSError as exc:
        jobs = f"(no answer: {exc})"
    text = f"\nGET /api/learning: {jobs}\nserver log {server.log_path}:\n{tail(server.log_path)}"
    for log in sorted((store / "learning").glob("*/work/learn.log")):
        text += f"\n{log}:\n{tail(log)}"
    return text


def wait_explained(locator, server, store, **kwargs) -> None:
    """locator.wait_for, failing with what the server says about its learning jobs."""
    try:
        locator.wait_for(**kwargs)
    except Exception as exc:  # Playwright's TimeoutError, without importing Playwright here
        pytest.fail(f"{exc}{what_went_on(server, store)}")


def test_an_admin_records_normal_footage_learns_a_model_and_switches_to_it(
        browser, learning_server, tmp_path):  # noqa: F811 (browser: test_viewer's fixture)
    server = learning_server
    store, models = tmp_path / "store", tmp_path / "models"
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    console, uncaught = watch_errors(page)
    page.goto(server.url + INSTRUMENTED)
    wait_js(page, "window.clipwatch && window.clipwatch.frameCount['ped2'] > 2", timeout=30_000)
    tile = page.locator('.tile[data-camera="ped2"]')
    panel = page.locator("section#learning")
    row = panel.locator('li.learn-camera[data-camera="ped2"]')
    row.wait_for(timeout=10_000)  # no auth: everyone is admin

    # 6 s of footage (the camera runs at 10 fps), alerts kept (the cyclist loops)
    row.locator("input.record-minutes").fill("0.1")
    row.locator("input.record-keep-alerts").check()
    row.locator("button.record-start").click()
    first = panel.locator("li.recording").first
    first.wait_for(timeout=10_000)
    rid = first.get_attribute("data-recording")
    item = panel.locator(f'li.recording[data-recording="{rid}"]')
    bar = tile.locator(".tile-recording")
    bar.wait_for(state="visible", timeout=10_000)
    assert re.fullmatch(r"recording normal footage \d+%",
                        bar.locator(".tile-work-label").text_content())
    assert 0 <= float(bar.get_attribute("data-progress")) <= 1
    ARTIFACTS.mkdir(exist_ok=True)
    # with the recording's bar; replaced by one with the learning bar below
    tile.screenshot(path=str(ARTIFACTS / "viewer-learning-tile.png"))
    assert row.locator("button.record-start").is_disabled()  # one recording per camera

    panel.locator(f'li.recording[data-recording="{rid}"][data-state="done"]') \
        .wait_for(timeout=90_000)
    assert item.locator(".recording-bar").get_attribute("data-progress") == "1"
    bar.wait_for(state="hidden", timeout=5_000)
    done = recordings(server)[rid]
    assert done["state"] == "done" and done["frames"] > 0, done

    # the last minute was not normal: all of this footage goes
    item.locator("button.recording-leave-out").click()
    item.locator('.learn-result[data-ok="true"]').wait_for(timeout=10_000)
    wait_for(lambda: recordings(server)[rid]["frames"] == 0, 10, what="the footage left out")

    # too little footage to learn from: the server's refusal in the item, and no job
    item.locator("button.recording-learn").click()
    form = item.locator("form.learn-form")
    name = form.locator("input.learn-model-name")
    name.fill("not a name!")
    assert not name.evaluate("input => input.validity.valid")  # the server's pattern
    name.fill("ped2-test")
    assert name.evaluate("input => input.validity.valid")
    assert form.locator("input.learn-minutes").input_value() == "20"
    form.locator("button.learn-start").click()
    item.locator('.learn-result[data-ok="false"]').filter(has_text="usable chunks") \
        .wait_for(timeout=10_000)
    assert server.get_json("/api/learning") == []

    item.locator("button.recording-delete").click()
    item.locator("button.recording-delete").filter(has_text="Really delete?").wait_for()
    item.locator("button.recording-delete").click()
    item.wait_for(state="detached", timeout=10_000)
    assert rid not in recordings(server)

    # a longer one: left out from and stopped while it records
    row.locator("input.record-minutes").fill("5")
    row.locator("input.record-keep-alerts").uncheck()
    row.locator("button.record-start").click()
    second = panel.locator('li.recording[data-state="recording"]')
    second.wait_for(timeout=10_000)
    rid2 = second.get_attribute("data-recording")
    item2 = panel.locator(f'li.recording[data-recording="{rid2}"]')
    bar.wait_for(state="visible", timeout=10_000)
    item2.locator("button.recording-leave-out").click()
    item2.locator('.learn-result[data-ok="true"]').wait_for(timeout=10_000)
    item2.locator("button.recording-stop").click()
    panel.locator(f'li.recording[data-recording="{rid2}"][data-state="stopped"]') \
        .wait_for(timeout=10_000)
    assert recordings(server)[rid2]["state"] == "stopped"
    assert item2.locator("button.recording-stop").is_disabled()
    assert item2.locator("button.recording-learn").is_enabled()
    bar.wait_for(state="hidden", timeout=5_000)

    # enough to learn from: 12 s, 120 frames, four whole chunks of 30 (each held-out chunk
    # gives calibration 21 frames with a verdict)
    row.locator("input.record-minutes").fill("0.2")
    row.locator("input.record-keep-alerts").check()
    row.locator("button.record-start").click()
    third = panel.locator('li.recording[data-state="recording"]')
    third.wait_for(timeout=10_000)
    rid3 = third.get_attribute("data-recording")
    item3 = panel.locator(f'li.recording[data-recording="{rid3}"]')
    panel.locator(f'li.recording[data-recording="{rid3}"][data-state="done"]') \
        .wait_for(timeout=120_000)
    footage = recordings(server)[rid3]
    assert footage["chunks"] >= 4, footage

    # a real learning job from its Learn form: a few seconds of training
    item3.locator("button.recording-learn").click()
    form = item3.locator("form.learn-form")
    form.locator("input.learn-model-name").fill(LEARNED)
    minutes = form.locator("input.learn-minutes")
    minutes.fill("0.1")
    assert minutes.evaluate("input => input.validity.valid")  # small budgets are allowed
    form.locator("button.learn-start").click()
    running = panel.locator('li.job[data-state="running"]')
    wait_explained(running, server, store, timeout=10_000)
    job_id = running.get_attribute("data-job")
    job = panel.locator(f'li.job[data-job="{job_id}"]')
    assert job.locator(".learn-name").text_content() == f"Ped2 test 1 · {LEARNED}"
    form.wait_for(state="detached", timeout=5_000)  # the form closes once the job starts

    # the tile's learning bar while it runs (the POST's answer shows it at once)
    learning_bar = tile.locator(".tile-learning")
    wait_explained(learning_bar, server, store, state="visible", timeout=10_000)
    label = learning_bar.locator(".tile-work-label").text_content()
    assert re.match(r"learning: (step \d+/\d+|\w+)", label), label
    assert 0 <= float(learning_bar.get_attribute("data-progress")) <= 1
    tile.screenshot(path=str(ARTIFACTS / "viewer-learning-tile.png"))

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (view := server.get_json(f"/api/learning/{job_id}"))["state"] == "running" \
            and time.monotonic() < deadline:
        time.sleep(1.0)
    assert view["state"] == "done", \
        f"job {job_id} is {view['state']} after {JOB_TIMEOUT_S} s{what_went_on(server, store)}"
    wait_explained(panel.locator(f'li.job[data-job="{job_id}"][data-state="done"]'
                                 '[data-stage="done"]'), server, store, timeout=10_000)
    learning_bar.wait_for(state="hidden", timeout=5_000)
    assert view["model"] == f"{LEARNED}.onnx" and view["progress"] is None, view
    assert (models / f"{LEARNED}.onnx").is_file()
    assert not (DEFAULT_MODEL.parent / f"{LEARNED}.onnx").exists()  # never in weights/

    # its figures beside the model it started from
    figures = job.locator(".job-figures").text_content()
    assert "false alarms" in figures and f"before ({SHIPPED})" in figures, figures

    # Activate puts the learned model on the camera, Roll back takes it back
    assert row.locator("button.camera-rollback").is_hidden()
    activate = job.locator("button.job-activate")
    assert activate.text_content() == "Activate on Ped2 test 1"
    activate.click()
    job.locator("button.job-activate").filter(has_text="Active on Ped2 test 1") \
        .wait_for(timeout=20_000)
    assert activate.is_disabled()
    camera = server.get_json("/api/cameras/ped2")
    assert camera["model"].endswith(f"{LEARNED}.onnx"), camera
    assert camera["previous_model"] == "default", camera
    rollback = row.locator("button.camera-rollback")
    rollback.wait_for(timeout=10_000)
    assert rollback.get_attribute("title") == "back to the default model"
    assert f"model {LEARNED}.onnx" in row.locator(".learn-model").text_content()
    panel.screenshot(path=str(ARTIFACTS / "viewer-learning.png"))
    rollback.click()
    activate.filter(has_text="Activate on Ped2 test 1").wait_for(timeout=20_000)
    camera = server.get_json("/api/cameras/ped2")
    assert camera["model"] is None, camera
    assert camera["previous_model"].endswith(f"{LEARNED}.onnx"), camera
    row.locator("button.camera-rollback").filter(has_text="Roll back").wait_for()  # undoes it

    assert [t for t in console if not REFUSALS.search(t)] == [] and uncaught == []
