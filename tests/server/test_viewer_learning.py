"""The viewer's "Learn a camera" panel in real headless Chromium against a real server: an
admin records a camera's normal footage from the page; the recording's list item and the
tile's bar follow it to the end (the websocket's 'recording' messages); the last minute is
left out, a model learned from footage too short is refused in the item's result line, the
recording is deleted; a second recording is left out from and stopped while it records.

Learning jobs are not started here: training is the backend tests' (and slow on small
machines). Two finished-looking jobs stand in for them in the page's GET /api/learning only:
a running one (the tile's learning bar, a Cancel the real server refuses) and a done one,
whose Activate button really puts its model on the camera (PATCH), and the camera's Roll back
really takes it back. Same conventions as test_viewer.py (its browser, CSP-safe waits).
"""

from __future__ import annotations

import re
import time

from server_helpers import wait_for
from test_viewer import ARTIFACTS, INSTRUMENTED, browser, wait_js, watch_errors  # noqa: F401

SHIPPED = "ucsd_ped2.onnx"  # the default model's file, in the model folder
RUNNING = {
    "id": "0123456789ab", "camera": "ped2", "recording": "ped2-stand-in", "name": "street",
    "from_model": SHIPPED, "scratch": False, "train_minutes": 20.0, "state": "running",
    "created_at": time.time() - 60, "finished_at": None, "model": None, "error": None,
    "progress": {"stage": "train", "step": 120, "steps": 900, "loss": 0.0123,
                 "clips_per_s": 45.2, "eta_s": 480.0, "train_seconds": 100.0,
                 "budget_s": 1200.0},
    "result": None, "launches": 1}
DONE = {
    **RUNNING, "id": "ba9876543210", "name": "street-old", "state": "done",
    "created_at": time.time() - 3600, "finished_at": time.time() - 2400, "model": SHIPPED,
    "progress": None,
    "result": {"false_alarm_rate": 0.005, "alerts_per_hour": 1.25, "threshold": 0.81,
               "before": {"model": SHIPPED, "false_alarm_rate": 0.021,
                          "alerts_per_hour": 5.0},
               "validation_score": 0.912, "steps": 900, "train_seconds": 720.0}}
# Chromium logs a refused request itself: the refusals this test provokes.
REFUSALS = re.compile(r"status of (404|422)")


def stand_in_jobs(route) -> None:
    if route.request.method == "GET":
        route.fulfill(json=[RUNNING, DONE])
    else:
        route.fallback()


def recordings(server) -> dict[str, dict]:
    return {r["id"]: r for r in server.get_json("/api/recordings")}


def test_an_admin_records_normal_footage_and_switches_models(browser,  # noqa: F811
                                                             looping_server):
    server = looping_server
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    console, uncaught = watch_errors(page)
    page.route("**/api/learning", stand_in_jobs)
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
    tile.screenshot(path=str(ARTIFACTS / "viewer-learning-tile.png"))  # with the job's bar
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

    # a running job: the tile's bar, its figures; the real server knows no such job
    running = panel.locator(f'li.job[data-job="{RUNNING["id"]}"][data-state="running"]'
                            '[data-stage="train"]')
    running.wait_for(timeout=10_000)
    learning_bar = tile.locator(".tile-learning")
    assert learning_bar.is_visible()
    assert learning_bar.locator(".tile-work-label").text_content() == \
        "learning: step 120/900 · ETA 8 min"
    assert abs(float(learning_bar.get_attribute("data-progress")) - 120 / 900) < 0.01
    assert "loss 0.0123" in running.locator(".learn-detail").text_content()
    running.locator("button.job-cancel").click()
    running.locator('.learn-result[data-ok="false"]').filter(has_text="no learning job") \
        .wait_for(timeout=10_000)

    # a done job: its figures, Activate puts its model on the camera, Roll back takes it back
    done_job = panel.locator(f'li.job[data-job="{DONE["id"]}"][data-state="done"]'
                             '[data-stage="done"]')
    figures = done_job.locator(".job-figures").text_content()
    assert "false alarms 0.50% of frames" in figures and "1.3 alerts/h" in figures, figures
    assert "before (ucsd_ped2.onnx): 2.10%" in figures and "validation 0.912" in figures
    assert row.locator("button.camera-rollback").is_hidden()
    activate = done_job.locator("button.job-activate")
    assert activate.text_content() == "Activate on Ped2 test 1"
    activate.click()
    done_job.locator("button.job-activate").filter(has_text="Active on Ped2 test 1") \
        .wait_for(timeout=20_000)
    assert activate.is_disabled()
    camera = server.get_json("/api/cameras/ped2")
    assert camera["model"].endswith(SHIPPED) and camera["previous_model"] == "default"
    rollback = row.locator("button.camera-rollback")
    rollback.wait_for(timeout=10_000)
    assert rollback.get_attribute("title") == "back to the default model"
    panel.screenshot(path=str(ARTIFACTS / "viewer-learning.png"))
    rollback.click()
    activate.filter(has_text="Activate on Ped2 test 1").wait_for(timeout=20_000)
    camera = server.get_json("/api/cameras/ped2")
    assert camera["model"] is None and camera["previous_model"].endswith(SHIPPED)
    row.locator("button.camera-rollback").filter(has_text="Roll back").wait_for()  # undoes it

    assert [t for t in console if not REFUSALS.search(t)] == [] and uncaught == []
