"""An alert's clip plays in the viewer, in real headless Chromium (Debian's, as in
test_viewer.py) against a real server replaying UCSD Ped2 test 1 with clips on.

The camera is disabled through the API a few seconds into the cyclist's alert, so the clip
is finished without waiting for the file to play out. The alert list then offers the clip;
the page plays it in the lightbox and Chromium reports the clip's own duration (a finite
one: the WebM carries its duration and cues), and the history links to it too.
"""

from __future__ import annotations

import math
import re
import tempfile

import av
import pytest
from server_helpers import ServerProcess, free_port, ped2_clip01, replay_camera, write_config
from test_viewer import ARTIFACTS, INSTRUMENTED, browser, wait_js, watch_errors  # noqa: F401

from clipwatch.config import ClipConfig

PRE, POST = 2.0, 1.0


@pytest.fixture
def clip_server(shared_data, tmp_path):
    # Disabled until the page has loaded: the camera learns its baseline from its first
    # frames, and Chromium starting a page at the same moment on two cores made the service
    # sample frames out, which the staggered model reads as fast motion (an inflated
    # baseline, then no alert at all; seen once in CI).
    camera = replay_camera(ped2_clip01(shared_data), fps=10.0, stride=1, enabled=False,
                           clip=ClipConfig(pre_seconds=PRE, post_seconds=POST))
    process = ServerProcess(write_config(tmp_path, [camera]), free_port(), tmp_path / "serve.log")
    yield process.start()
    process.stop()


def clip_duration(data: bytes) -> float:
    """The clip's duration as its container says (PyAV), from the bytes the server sent."""
    with tempfile.NamedTemporaryFile(suffix=".webm") as fh:
        fh.write(data)
        fh.flush()
        with av.open(fh.name) as container:
            return container.duration / 1e6


def test_the_alert_clip_plays_in_the_viewer_with_its_duration(browser, clip_server):  # noqa: F811
    server = clip_server
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    console, uncaught = watch_errors(page)
    page.goto(server.url + INSTRUMENTED)
    wait_js(page, "window.clipwatch && window.clipwatch.connected === true", timeout=30_000)
    page.wait_for_timeout(1000)  # the page's first fetches are done
    response = page.request.patch(f"{server.url}/api/cameras/ped2", data={"enabled": True})
    assert response.ok, response.text()
    item = page.locator("#alerts li.alert").first
    item.wait_for(timeout=60_000)
    event_id = int(item.get_attribute("data-event-id"))
    page.wait_for_timeout(3000)  # the alert goes on a while
    response = page.request.patch(f"{server.url}/api/cameras/ped2", data={"enabled": False})
    assert response.ok, response.text()

    # the clip is written and attached: the update message shows its button in the list
    button = item.locator("button.clip")
    button.wait_for(state="visible", timeout=20_000)
    event = server.get_json(f"/api/events/{event_id}")
    assert event["clip_url"] == f"/api/events/{event_id}/clip.webm"
    button.click()
    video = page.locator("#lightbox-video")
    video.wait_for(state="visible")
    wait_js(page, "document.getElementById('lightbox-video').readyState >= 1", timeout=10_000)
    duration = page.evaluate("document.getElementById('lightbox-video').duration")
    assert isinstance(duration, int | float) and math.isfinite(duration), duration
    served = page.request.get(server.url + event["clip_url"])
    assert served.ok and served.headers["content-type"] == "video/webm"
    # Chromium reads the duration the file holds: the pre-roll, the alert's 3 s and more
    assert duration == pytest.approx(clip_duration(served.body()), abs=0.05)
    assert duration >= PRE + 2.5
    # and it plays: time goes on (muted, so the page may start it by itself)
    wait_js(page, "document.getElementById('lightbox-video').currentTime > 0.5", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "viewer-clip.png"))
    # a click on the player (its controls) keeps the lightbox; Escape closes it and stops
    video.click()
    assert page.locator("#lightbox").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#lightbox").is_hidden()
    assert page.evaluate("document.getElementById('lightbox-video').getAttribute('src')") is None

    # the history links the clip too, and plays it in the same player
    link = page.locator(f'#history-rows tr[data-event-id="{event_id}"] a.clip')
    link.wait_for(timeout=10_000)
    assert re.search(rf"/api/events/{event_id}/clip\.webm$", link.get_attribute("href"))
    # ... beside the model the camera ran when it raised the alert
    row = page.locator(f'#history-rows tr[data-event-id="{event_id}"]')
    assert row.locator("td.model").inner_text() == "ucsd_ped2"
    link.click()
    wait_js(page, "document.getElementById('lightbox-video').readyState >= 1", timeout=10_000)
    assert page.evaluate("document.getElementById('lightbox-video').duration") == duration
    assert console == [] and uncaught == []
