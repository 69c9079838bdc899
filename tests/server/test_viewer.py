"""The viewer in real headless Chromium (Debian's, driven by Playwright) against a real server.

It loads as ES modules (served as JavaScript) without console errors, shows a live tile with
the camera's measured frame rate, the timeline moves, an alert appears (UCSD Ped2 test 1,
looping) and is acknowledged from the page; the server is then restarted and the page
reconnects by itself. Screenshots and the frame-to-viewer latencies the page measured are
saved under test-artifacts/ (latencies are reported, not asserted: speed belongs to
benchmarks).

The page's measurements (window.clipwatch) are test instrumentation, off by default: these
tests open the viewer at INSTRUMENTED, and check that the plain URL exposes nothing.

The page runs under the service's Content-Security-Policy (no inline script, no eval): a
violation would be a console error. Waits poll with `page.evaluate` for that reason:
Playwright's `wait_for_function` evaluates its predicate with the page's own eval, which the
policy rightly refuses.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from server_helpers import ServerProcess, free_port, ped2_clip01, replay_camera, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INSTRUMENTED = "/?instrument=1"  # switches on window.clipwatch (static/js/instrument.js)
# What Chromium itself logs as console errors while the server is down: expected there only.
OUTAGE_ERRORS = re.compile(r"net::ERR_CONNECTION_REFUSED|WebSocket connection to .* failed")


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


def watch_errors(page) -> tuple[list[str], list[str]]:
    """Console errors and uncaught page errors, as they happen."""
    console: list[str] = []
    uncaught: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: uncaught.append(str(exc)))
    return console, uncaught


def watch_scripts(page) -> dict[str, str]:
    """URL -> Content-Type of every script the page loads."""
    scripts: dict[str, str] = {}
    page.on("response", lambda r: scripts.__setitem__(r.url, r.headers.get("content-type", ""))
            if r.request.resource_type == "script" or r.url.endswith(".js") else None)
    return scripts


def wait_js(page, expression: str, timeout: float) -> None:
    """Until `expression` is truthy in the page (`timeout` in ms, as Playwright's)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout / 1000:g} s waiting for {expression}")
        page.wait_for_timeout(100)


def shown_fps(tile) -> float:
    text = tile.locator(".meta .fps").text_content()
    match = re.fullmatch(r"(\d+\.\d) fps", text)
    assert match, f"the tile shows no frame rate: {text!r}"
    return float(match.group(1))


def wait_fps_shown(tile) -> float:
    tile.locator(".meta .fps").filter(has_text=re.compile(r"\d fps$")).wait_for(timeout=20_000)
    fps = shown_fps(tile)
    assert fps > 0
    return fps


def camera_view(page, camera: str = "ped2") -> dict:
    """The camera as /api/cameras shows it, asked with the page's cookies (works behind the
    login too)."""
    origin = re.match(r"https?://[^/]+", page.url).group(0)
    (view,) = [c for c in page.request.get(f"{origin}/api/cameras").json()
               if c["id"] == camera]
    return view


def rewrite_fps_in(value: float):
    """A route handler: /api/cameras as the server answers it, with every fps_in = value."""
    def handle(route):
        response = route.fetch()
        cameras = response.json()
        for camera in cameras:
            camera["fps_in"] = value
        route.fulfill(response=response, json=cameras)
    return handle


def test_viewer_shows_live_video_timeline_alerts_and_survives_a_restart(browser, looping_server):
    server = looping_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    console, uncaught = watch_errors(page)
    scripts = watch_scripts(page)
    policy = page.goto(server.url + INSTRUMENTED).headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy  # what the page runs under

    tile = page.locator('.tile[data-camera="ped2"]')
    tile.wait_for(timeout=20_000)
    wait_js(page, "window.clipwatch && window.clipwatch.frameCount['ped2'] > 5",
            timeout=30_000)
    assert tile.locator("img.video").get_attribute("src").startswith("blob:")

    # the viewer is ES modules, from this server only, each served as JavaScript
    assert page.locator('script[type="module"]').count() >= 1
    assert page.locator("script:not([type=module])").count() == 0
    assert any(url.endswith("/static/js/main.js") for url in scripts), scripts
    for url, content_type in scripts.items():
        assert url.startswith(server.url + "/static/"), url
        assert "javascript" in content_type, (url, content_type)

    # the tile shows the frame rate measured at the camera (fps_in), not the config's fps
    # (10), and follows what /api/cameras says it is now (here: a rewritten figure)
    wait_fps_shown(tile)
    assert camera_view(page)["fps"] == 10.0
    page.route("**/api/cameras", rewrite_fps_in(12.34))
    tile.locator(".meta .fps").filter(has_text=re.compile(r"^12\.3 fps$")).wait_for(timeout=15_000)
    page.unroute("**/api/cameras")
    tile.locator(".meta .fps").filter(has_text=re.compile(r"^(?!12\.3 fps$)")) \
        .wait_for(timeout=15_000)  # the real figure again, before any screenshot

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

    # no console errors and no uncaught exceptions while the server was up
    assert console == [] and uncaught == []

    # the server restarts: the page notices, reconnects by itself and video flows again
    latencies = page.evaluate("window.clipwatch.latencies.slice()")
    server.stop()
    wait_js(page, "window.clipwatch.connected === false", timeout=15_000)
    frames_before = count(page, "frameCount")
    server.start()
    wait_js(page, "window.clipwatch.connected === true", timeout=30_000)
    wait_js(page, f"window.clipwatch.frameCount['ped2'] > {frames_before + 5}",
            timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "viewer-reconnected.png"))
    assert uncaught == []
    # while it was down Chromium logged the refused connections; nothing else went wrong
    assert [text for text in console if not OUTAGE_ERRORS.search(text)] == []

    # without the switch the page exposes no instrumentation (and still works)
    plain = browser.new_page(viewport={"width": 1366, "height": 768})
    plain_console, plain_uncaught = watch_errors(plain)
    for query in ("", "/?instrument=0"):
        plain.goto(server.url + query)
        plain.locator('.tile[data-camera="ped2"] img.video[src^="blob:"]').wait_for(timeout=30_000)
        assert plain.evaluate("typeof window.clipwatch") == "undefined", query
    assert plain_console == [] and plain_uncaught == []
    plain.close()

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
    # No configured fps: the folder plays at its own 10 frames/s and only the measured rate
    # (fps_in) can be on the tile.
    camera = replay_camera(ped2_clip01(shared_data), loop=True, fps=None)
    server = ServerProcess(write_config(tmp_path, [camera], auth=auth), free_port(),
                           tmp_path / "serve.log").start()
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        uncaught: list[str] = []
        page.on("pageerror", lambda exc: uncaught.append(str(exc)))
        page.goto(server.url + INSTRUMENTED)
        form = page.locator("#login")
        form.wait_for(state="visible", timeout=10_000)
        page.fill("#login-name", "op")
        page.fill("#login-password", "wrong password")
        page.click("#login-submit")
        page.locator("#login-error").filter(has_text="wrong name or password").wait_for()
        page.fill("#login-password", "night shift")
        page.click("#login-submit")
        form.wait_for(state="hidden", timeout=10_000)
        wait_js(page, "window.clipwatch.frameCount['ped2'] > 3", timeout=30_000)
        # no fps in the config: the figure on the tile can only be the measured one
        wait_fps_shown(page.locator('.tile[data-camera="ped2"]'))
        view = camera_view(page)
        assert view["fps"] is None and view["fps_in"] is not None
        assert uncaught == []
        # the session cookie is HttpOnly: the page's scripts cannot read it
        assert "clipwatch_session" not in page.evaluate("document.cookie")
        page.screenshot(path=str(ARTIFACTS / "viewer-login.png"))
    finally:
        server.stop()
