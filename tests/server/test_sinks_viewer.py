"""The viewer's alert-sink panel in real Chromium against a real `clipwatch serve`: the sink
is listed with its delivery status, an admin's Test button sends a signed test message to
a real local receiver and shows the answer, or why it failed."""

from __future__ import annotations

from server_helpers import ServerProcess, free_port
from sink_helpers import WebhookReceiver
from test_viewer import ARTIFACTS, browser, watch_errors  # noqa: F401 (browser: a fixture)

from clipwatch.config import Config, SinkConfig, save_config

SECRET = "viewer-test-webhook-secret"


def test_the_viewer_lists_sinks_and_tests_one(browser, tmp_path):  # noqa: F811
    receiver = WebhookReceiver(SECRET)
    config = Config(sinks=[SinkConfig(id="ops", kind="webhook", url=receiver.url,
                                      secret=SECRET, timeout_s=1.0)])
    config.storage.dir = tmp_path / "store"
    path = tmp_path / "clipwatch.yaml"
    save_config(config, path)
    server = ServerProcess(path, free_port(), tmp_path / "serve.log").start()
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        console, uncaught = watch_errors(page)
        page.goto(server.url)
        item = page.locator('#sinks li.sink[data-sink="ops"]')
        item.wait_for(timeout=20_000)
        assert item.locator(".sink-target").text_content() == receiver.url
        item.locator("button.sink-test").click()
        item.locator('.sink-result[data-ok="true"]').wait_for(timeout=10_000)
        assert item.locator(".sink-result").text_content().startswith("delivered: HTTP 204")
        (arrived, message, signed, _), = receiver.accepted
        assert message["type"] == "test" and message["sink"] == "ops" and signed
        receiver.mode = "fail"
        item.locator("button.sink-test").click()
        item.locator('.sink-result[data-ok="false"]').wait_for(timeout=10_000)
        assert "HTTP 500" in item.locator(".sink-result").text_content()
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#sinks").screenshot(path=str(ARTIFACTS / "viewer-sinks.png"))
        assert console == [] and uncaught == []
    finally:
        server.stop()
        receiver.close()
