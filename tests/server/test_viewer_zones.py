"""The masks-and-zones editor in real headless Chromium against a real server: an admin
clicks a zone and a mask over the live picture and saves them; the server has them (in
frame pixels, where they were clicked), writes them to its config, the tile draws them, and
the zone's alert (the cyclist of UCSD Ped2 test 1, looping) names the zone in the alert
list. Same conventions as test_viewer.py (its browser, CSP-safe waits)."""

from __future__ import annotations

from server_helpers import wait_for
from test_viewer import ARTIFACTS, INSTRUMENTED, browser, wait_js, watch_errors  # noqa: F401

from clipwatch.config import load_config

FRAME = (360, 240)  # UCSD Ped2's frames
# Around the cyclist's ride (UCSD Ped2 test 1's ground truth; tests/server/test_zones.py)
ZONE = [(0, 90), (280, 90), (280, 180), (0, 180)]
MASK = [(10, 10), (150, 10), (80, 80)]


def click_frame_points(page, svg, points) -> None:
    """Click frame pixels over the tile's picture (object-fit: contain, letterboxed)."""
    box = svg.bounding_box()
    scale = min(box["width"] / FRAME[0], box["height"] / FRAME[1])
    left = box["x"] + (box["width"] - FRAME[0] * scale) / 2
    top = box["y"] + (box["height"] - FRAME[1] * scale) / 2
    for x, y in points:
        page.mouse.click(left + (x + 0.5) * scale, top + (y + 0.5) * scale)


def test_an_admin_draws_a_zone_and_a_mask_over_the_live_picture(browser,  # noqa: F811
                                                                looping_server):
    server = looping_server
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    console, uncaught = watch_errors(page)
    page.goto(server.url + INSTRUMENTED)
    tile = page.locator('.tile[data-camera="ped2"]')
    wait_js(page, "window.clipwatch && window.clipwatch.frameCount['ped2'] > 2", timeout=30_000)
    wait_for(lambda: server.get_json("/api/cameras/ped2")["frame_size"] == list(FRAME), 20,
             what="the camera's frame size")

    tile.locator("button.zones-edit").click()  # no auth: everyone is admin
    editor = tile.locator(".regions-editor")
    editor.wait_for()
    svg = tile.locator("svg.regions")

    editor.locator("select.region-kind").select_option("zone")
    editor.locator("input.zone-name").fill("walkway")
    editor.locator("input.zone-threshold").fill("0.7")
    click_frame_points(page, svg, ZONE)
    assert svg.locator("circle.draft-point").count() == 4
    editor.locator("button.region-close").click()

    editor.locator("select.region-kind").select_option("mask")
    click_frame_points(page, svg, MASK + [(5, 200)])
    editor.locator("button.region-undo").click()  # the stray last point
    editor.locator("button.region-close").click()
    assert editor.locator(".regions-list li").count() == 2
    editor.locator("button.regions-save").click()
    editor.wait_for(state="detached", timeout=15_000)

    view = server.get_json("/api/cameras/ped2")
    (zone,) = view["zones"]
    assert zone["name"] == "walkway" and zone["threshold"] == 0.7
    (mask,) = view["masks"]
    for clicked, wanted in [(zone["polygon"], ZONE), (mask, MASK)]:
        assert len(clicked) == len(wanted)
        for (x, y), (wx, wy) in zip(clicked, wanted, strict=True):
            assert abs(x - wx) <= 2 and abs(y - wy) <= 2, (clicked, wanted)
    (saved,) = load_config(server.config_path).cameras
    assert saved.zones[0].name == "walkway" and len(saved.masks) == 1

    # the tile draws what the server has (after its 'cameras' announcement too), and the
    # zone's label follows its score
    tile.locator('svg.regions polygon.zone[data-zone="walkway"]').wait_for(timeout=10_000)
    assert svg.locator("polygon.mask").count() == 1
    page.wait_for_timeout(1000)

    # the camera restarted with them, learns its baseline again, and the cyclist raises an
    # alert in the zone: the alert list names it
    page.locator("#alerts li.alert .alert-camera").filter(has_text="· walkway") \
        .first.wait_for(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-zones.png"))

    # a refusal is shown as the server words it: a polygon crossing itself
    tile.locator("button.zones-edit").click()
    click_frame_points(page, svg, [(200, 20), (260, 60), (260, 20), (200, 60)])
    editor.locator("button.region-close").click()
    editor.locator("button.regions-save").click()
    editor.locator(".regions-message.error").filter(has_text="self-intersecting") \
        .wait_for(timeout=10_000)
    editor.locator("button.regions-cancel").click()
    assert len(server.get_json("/api/cameras/ped2")["masks"]) == 1  # unchanged
    # Chromium logs the refused request itself; nothing else went wrong
    assert [t for t in console if "status of 422" not in t] == [] and uncaught == []
