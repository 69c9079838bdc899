"""Frame-to-viewer latency, measured in real Chromium over a replay at the source's speed.

Starts `clipwatch serve` (the demo camera unless --config is given) on a free port, opens the
viewer in headless Chromium (Debian's, through Playwright), and for --seconds collects what
the page measured for every frame it received: its arrival time minus the frame's capture
time (same machine, same clock). Prints p50/p95/p99 and saves a screenshot of the viewer
while an alert is open. The page measures only when asked to: it is opened with
`?instrument=1`, which puts its figures on window.clipwatch (static/js/instrument.js).

    .venv/bin/python scripts/viewer_latency.py --seconds 60 --screenshot viewer-alert.png
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"viewer_latency: clipwatch serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit("viewer_latency: the server did not become ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="clipwatch config (default: the demo camera)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--screenshot", default="test-artifacts/viewer-alert.png")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    storage = tempfile.mkdtemp(prefix="clipwatch-latency-")
    command = [sys.executable, "-m", "clipwatch", "serve", "--port", str(port),
               "--storage", storage]
    if args.config:
        command += ["--config", args.config]
    server = subprocess.Popen(command)
    try:
        wait_ready(url, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{url}/?instrument=1")  # the page's measurements are opt-in
            started = time.monotonic()
            shot = None
            while time.monotonic() - started < args.seconds:
                if shot is None and page.locator(".tile.alerting").count() and \
                        page.locator("#alerts li.alert").count():
                    page.wait_for_timeout(1000)  # let the thumbnail and timeline settle
                    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=args.screenshot)
                    shot = args.screenshot
                page.wait_for_timeout(250)
            # one evaluate, so the samples and their frame indices are from the same moment
            measured = page.evaluate("({latencies: window.clipwatch.latencies.slice(),"
                                     " indices: window.clipwatch.latencyFrames.slice(),"
                                     " frames: {...window.clipwatch.frameCount}})")
            latencies, indices = measured["latencies"], measured["indices"]
            frames = measured["frames"]
            browser.close()
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    finally:
        server.terminate()
        server.wait(20)
    ms = [1000 * v for v in latencies]
    # After every (re)start, and at each loop of a recording, the first clip needs 10 frames:
    # frames 0-8 wait for it (up to 0.9 s at 10 fps) by design. Steady state leaves them out.
    steady = [v for v, i in zip(ms, indices, strict=True) if i >= 9]
    report = {"seconds": args.seconds, "frames_received": frames, "samples": len(ms),
              "p50_ms": percentile(ms, 0.5), "p95_ms": percentile(ms, 0.95),
              "p99_ms": percentile(ms, 0.99), "max_ms": max(ms),
              "steady_samples": len(steady), "steady_p50_ms": percentile(steady, 0.5),
              "steady_p95_ms": percentile(steady, 0.95),
              "steady_p99_ms": percentile(steady, 0.99), "screenshot_mid_alert": shot,
              "config": args.config or "demo camera (sample clip at 10 fps, stride 1)"}
    dropped = [line for line in metrics.splitlines()
               if line.startswith(("clipwatch_frames_dropped_total", "clipwatch_frames_in_total",
                                   "clipwatch_frames_scored_total", "clipwatch_alerts_total",
                                   "clipwatch_inference_seconds_sum",
                                   "clipwatch_inference_seconds_count"))]
    report["server_metrics"] = dropped
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
