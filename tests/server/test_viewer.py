"""The viewer in real headless Chromium (Debian's, driven by Playwright) against a real server.

It loads, shows a live tile, the timeline moves, an alert appears (UCSD Ped2 test 1, looping)
and is acknowledged from the page; the server is then restarted and the page reconnects by
itself. Screenshots and the frame-to-viewer latencies the page measured are saved under
test-artifacts/ (latencies are reported, not asserted: speed belongs to benchmarks).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from server_helpers import ServerProcess, free_port, ped2_clip01, replay_camera, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the dev extra")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing in CI (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def count(page, kind: str, camera: str = "ped2") -> int:
    return page.evaluate(f"(window.clipwatch && window.clipwatch.{kind}['{camera}']) || 0")


def test_viewer_shows_live_video_timeline_alerts_and_survives_a_restart(browser, looping_server):
    server = looping_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)

    tile = page.locator('.tile[data-camera="ped2"]')
    tile.wait_for(timeout=20_000)
    page.wait_for_function("window.clipwatch && window.clipwatch.frameCount['ped2'] > 5",
                           timeout=30_000)
    assert tile.locator("img.video").get_attribute("src").startswith("blob:")

    # once the camera has learned its baseline it is live, and the timeline moves: more
    # scores arrive and the canvas is redrawn
    tile.locator('.status[data-state="live"]').wait_for(timeout=30_000)
    canvas = tile.locator("canvas.timeline")
    before_scores, before_pixels = count(page, "scoreCount"), canvas.screenshot()
    page.wait_for_timeout(1500)
    assert count(page, "scoreCount") > before_scores
    assert canvas.screenshot() != before_pixels

    # an alert appears in the list with its snapshot thumbnail, while the tile is alerting
    item = page.locator("#alerts li.alert").first
    item.wait_for(timeout=60_000)
    page.locator('.tile.alerting[data-camera="ped2"]').wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "viewer-alert.png"))
    event_id = int(item.get_attribute("data-event-id"))
    thumb = item.locator("img.thumb")
    thumb.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", thumb.element_handle())

    # acknowledge it from the page, with a note; the server has it
    item.locator("button.ack").click()
    item.locator("input.ack-note").fill("cyclist on the walkway")
    item.locator("button.ack-confirm").click()
    page.locator(f'#alerts li[data-event-id="{event_id}"][data-acknowledged="true"]') \
        .wait_for(timeout=10_000)
    stored = server.get_json(f"/api/events/{event_id}")
    assert stored["acknowledged"] is True and stored["ack_note"] == "cyclist on the walkway"

    # the server restarts: the page notices, reconnects by itself and video flows again
    latencies = page.evaluate("window.clipwatch.latencies.slice()")
    server.stop()
    page.wait_for_function("window.clipwatch.connected === false", timeout=15_000)
    frames_before = count(page, "frameCount")
    server.start()
    page.wait_for_function("window.clipwatch.connected === true", timeout=30_000)
    page.wait_for_function(f"window.clipwatch.frameCount['ped2'] > {frames_before + 5}",
                           timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "viewer-reconnected.png"))
    assert errors == []

    latencies = sorted(latencies)
    report = {"frames": len(latencies),
              "p50_ms": 1000 * latencies[len(latencies) // 2],
              "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
              "note": "camera paced at 20 fps, stride 5, while the test drives the page"}
    (ARTIFACTS / "viewer-latency.json").write_text(json.dumps(report, indent=2))
    print(f"frame-to-viewer latency over {report['frames']} frames: "
          f"p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms")


def test_the_viewer_asks_for_a_login_when_the_server_has_auth(browser, shared_data, tmp_path):
    from clipwatch.config import AuthConfig, UserAccount
    from clipwatch.server.auth import hash_password

    auth = AuthConfig(users=[UserAccount(name="op", password=hash_password("night shift"))])
    camera = replay_camera(ped2_clip01(shared_data), loop=True)
    server = ServerProcess(write_config(tmp_path, [camera], auth=auth), free_port(),
                           tmp_path / "serve.log").start()
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(server.url)
        form = page.locator("#login")
        form.wait_for(state="visible", timeout=10_000)
        page.fill("#login-name", "op")
        page.fill("#login-password", "wrong password")
        page.click("#login-submit")
        page.locator("#login-error").filter(has_text="wrong name or password").wait_for()
        page.fill("#login-password", "night shift")
        page.click("#login-submit")
        form.wait_for(state="hidden", timeout=10_000)
        page.wait_for_function("window.clipwatch.frameCount['ped2'] > 3", timeout=30_000)
        # the session cookie is HttpOnly: the page's scripts cannot read it
        assert "clipwatch_session" not in page.evaluate("document.cookie")
        page.screenshot(path=str(ARTIFACTS / "viewer-login.png"))
    finally:
        server.stop()
