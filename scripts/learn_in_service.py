"""A new camera learned inside the running service, timed, with the live cameras' frame rate.

Starts `clipwatch serve` with one camera already running (UCSD Ped2 test 1 in a loop, the
scene the shipped model knows), opens the viewer in headless Chromium, then does what an
admin does for a new camera:

1. adds the street camera (../shared/data/video/vtest.avi, at its own 10 frames/s, looping)
   and records its first --record-minutes at once (default 0.795: the first 60 % of the
   video), keeping frames while the shipped model's alerts are open (it does not know the
   street, so they say nothing);
2. measures both cameras' scored frames/s and the street's alerts for --measure-seconds
   with the shipped model;
3. starts a learning job (fine-tune the shipped model, --train-minutes) and samples the
   cameras' scored frames/s and the job's progress every 5 s while it runs (a screenshot of
   the viewer halfway through training);
4. activates the learned model on the street camera (no restart), measures again, takes a
   screenshot, rolls back and forth once.

Writes the figures to OUT/learn_in_service.json and the screenshots to OUT/.

    .venv/bin/python scripts/learn_in_service.py --out docs/learning
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright
from viewer_latency import CHROMIUM_ARGS, free_port  # the same headless Chromium, a free port

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipwatch.config import CameraConfig, Config, save_config  # noqa: E402
from clipwatch.paths import DEFAULT_MODEL  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def call(url: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    sys.exit(f"learn_in_service: timed out waiting for {what}")


def scored(api: str) -> dict[str, int]:
    return {c["id"]: c["frames_scored"] for c in call(f"{api}/cameras")}


def rates(api: str, seconds: float) -> dict[str, float]:
    before, t0 = scored(api), time.monotonic()
    time.sleep(seconds)
    after, t1 = scored(api), time.monotonic()
    return {cid: round((after[cid] - before.get(cid, 0)) / (t1 - t0), 2) for cid in after}


def alerts(api: str, camera: str, since: float) -> int:
    return call(f"{api}/events?camera={camera}&since={since}&limit=1")["total"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/learning")
    parser.add_argument("--record-minutes", type=float, default=0.795)
    parser.add_argument("--train-minutes", type=float, default=15.0)
    parser.add_argument("--measure-seconds", type=float, default=60.0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clipwatch-learn-"))
    models = work / "models"
    models.mkdir()
    for path in DEFAULT_MODEL.parent.glob(f"{DEFAULT_MODEL.stem}.*"):
        shutil.copy(path, models / path.name)
    config = Config(cameras=[CameraConfig(
        id="walkway", name="Ped2 walkway", loop=True, fps=10.0,
        source=str(SHARED / "ucsd_ped2" / "testing" / "frames" / "01"))])
    config.model.path = models / DEFAULT_MODEL.name
    config.model.folder = models
    config.storage.dir = work / "store"
    config_path = work / "clipwatch.yaml"
    save_config(config, config_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = f"{url}/api"
    log = open(work / "serve.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "clipwatch", "serve", "--config",
                               str(config_path), "--port", str(port)], stdout=log,
                              stderr=subprocess.STDOUT)
    figures: dict = {"record_minutes": args.record_minutes,
                     "train_minutes": args.train_minutes}
    try:
        wait(lambda: _ready(url), 90, "the server")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            # 1. the new camera, recorded from its first frame
            started = time.time()
            call(f"{api}/cameras", "POST", {
                "id": "street", "name": "Street (vtest.avi)", "loop": True,
                "source": str(SHARED / "video" / "vtest.avi")})
            recording = call(f"{api}/cameras/street/recordings", "POST",
                             {"minutes": args.record_minutes, "keep_alerts": True})
            rid = recording["id"]
            recording = wait(lambda: (r := call(f"{api}/recordings/{rid}"))["state"]
                             not in ("recording", "waiting") and r, 600, "the recording")
            recorded = time.time()
            figures["recording"] = recording
            figures["recording_seconds"] = round(recorded - started, 1)
            print(f"recorded {recording['frames']} frames in {recording['chunks']} chunks "
                  f"({recording['bytes'] / 1e6:.1f} MB) in {recorded - started:.0f} s")
            # 2. the shipped model
            since = time.time()
            figures["fps_before_training"] = rates(api, args.measure_seconds)
            figures["street_alerts_per_min_shipped"] = round(
                alerts(api, "street", since) / ((time.time() - since) / 60), 2)
            print("scored frames/s before training:", figures["fps_before_training"])
            # 3. learning, with the live rate sampled
            learn_at = time.time()
            job = call(f"{api}/learning", "POST", {
                "camera": "street", "recording": rid, "name": "street_live",
                "train_minutes": args.train_minutes})
            samples, shot = [], False
            while (job := call(f"{api}/learning/{job['id']}"))["state"] == "running":
                sample = rates(api, 5.0)
                progress = job["progress"] or {}
                samples.append({"t": round(time.time() - learn_at, 1), "fps": sample,
                                "stage": progress.get("stage"), "step": progress.get("step"),
                                "clips_per_s": progress.get("clips_per_s"),
                                "eta_s": progress.get("eta_s")})
                print(samples[-1], flush=True)
                if not shot and progress.get("stage") == "train" and \
                        (progress.get("train_seconds") or 0) > args.train_minutes * 30:
                    page.screenshot(path=str(out / "viewer-training.png"), full_page=True)
                    shot = True
            if job["state"] != "done":
                sys.exit(f"learn_in_service: the job ended {job['state']}: {job['error']}")
            training = [s for s in samples if s["stage"] == "train"]
            figures["fps_during_training"] = {
                cid: round(statistics.mean(s["fps"][cid] for s in training), 2)
                for cid in training[0]["fps"]} if training else None
            figures["fps_during_training_min"] = {
                cid: min(s["fps"][cid] for s in training)
                for cid in training[0]["fps"]} if training else None
            figures["job"] = job
            figures["samples"] = samples
            # 4. the switch
            call(f"{api}/cameras/street", "PATCH", {"model": job["model"]})
            active = time.time()
            figures["learn_to_active_seconds"] = round(active - learn_at, 1)
            figures["record_to_active_seconds"] = round(active - started, 1)
            print(f"learned and active in {(active - learn_at) / 60:.1f} min "
                  f"({(active - started) / 60:.1f} min from the start of the recording)")
            time.sleep(5)
            since = time.time()
            figures["fps_after_switch"] = rates(api, args.measure_seconds)
            figures["street_alerts_per_min_learned"] = round(
                alerts(api, "street", since) / ((time.time() - since) / 60), 2)
            page.reload()
            page.wait_for_timeout(8000)
            page.screenshot(path=str(out / "viewer-switched.png"), full_page=True)
            back = call(f"{api}/cameras/street/rollback", "POST")
            again = call(f"{api}/cameras/street/rollback", "POST")
            figures["rollback"] = {"back_to": back["model"], "then": again["model"]}
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
        (out / "learn_in_service.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k not in ("samples", "job")},
                     indent=2))
    return 0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
