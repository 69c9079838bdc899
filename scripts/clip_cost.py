"""What event clips cost: CPU seconds and disk MB per camera-hour, measured on real footage
through the service's own ClipRecorder (clipwatch/server/clips.py).

    .venv/bin/python scripts/clip_cost.py ../shared/data/video/vtest.avi
    .venv/bin/python scripts/clip_cost.py ../shared/data/ucsd_ped2/testing/frames/01 --fps 10
    .venv/bin/python scripts/clip_cost.py ../shared/data/video/vtest.avi --scale-to 1920x1080

Two costs, both on the recorder's own thread (the inference thread pays only a queue put):
- always, alert or not: every scored frame is scaled to the clip's height and JPEG-encoded
  into the pre-roll ring (`ring`);
- while an alert's clip records: the frames are also encoded into the clip, with the
  heatmap blended in when asked (`alert`: the recorder's whole CPU, ring included) and
  written to disk (`MB`).
The source is played once per configuration as a camera at its frame rate (timestamps, not
pacing: it runs as fast as the CPU allows, one frame waiting at a time so none is dropped),
with the whole of it one alert for the alert figures. `--scale-to` resizes the source's
frames first, standing in for a camera of that size (an upscaled source is smoother than a
real one of that size, so its MB/h is a lower bound). OpenCV runs on one thread here, so
the recorder's thread CPU time is all of its cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import cv2
import numpy as np

from clipwatch.config import ClipConfig
from clipwatch.server.alerts import Alert, Transition
from clipwatch.server.clips import ClipRecorder, clip_size
from clipwatch.server.event_store import EventStore
from clipwatch.stream.sources import open_source

T0 = 1_700_000_000.0


def load(source: str, fps: float | None, limit: int) -> tuple[list[np.ndarray], float]:
    with open_source(source, fps) as frames:
        rate = fps or getattr(frames, "fps", None) or 10.0
        images = []
        for frame in frames:
            images.append(frame.image)
            if len(images) >= limit:
                break
    return images, float(rate)


def run(images: list[np.ndarray], fps: float, config: ClipConfig, alert: bool,
        scale_to: tuple[int, int] | None) -> dict:
    """Play the frames through a recorder; returns its CPU seconds and the clip's bytes."""
    error_map = np.zeros((227, 227), np.float32)
    error_map[60:160, 80:150] = 0.2  # a hot region, for the heatmap option's overlay cost
    with tempfile.TemporaryDirectory() as folder:
        store = EventStore(folder)
        recorder = ClipRecorder("bench", config, store, lambda message: None, 85)
        recorder.start()
        event = Alert(camera="bench", started_at=T0, start_frame=0, lowest_regularity=0.0,
                      worst_frame=0, worst_at=T0, threshold=0.5, frames=1, updated_at=T0)
        if alert:
            _, stored = store.record("start", event)
            recorder.note(Transition("start", event))
            recorder.stored(event, stored["id"])
        for k, image in enumerate(images):
            while recorder.backlog > 1:  # one frame waiting at a time: none dropped
                time.sleep(0.0005)
            if scale_to:  # (on this thread: not counted)
                image = cv2.resize(image, scale_to, interpolation=cv2.INTER_LINEAR)
            recorder.add(T0 + k / fps, image, error_map)
        recorder.stop()
        recorder.join()
        clip = store.clip_path(stored["id"]) if alert else None
        size = clip.stat().st_size if clip else 0
        store.close()
        assert recorder.frames_dropped == 0
        return {"cpu_s": recorder.cpu_seconds, "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a video file or a folder of frames")
    parser.add_argument("--fps", type=float, help="the camera's frame rate (default: the "
                                                  "source's)")
    parser.add_argument("--scale-to", help="WxH: resize the source's frames to this first")
    parser.add_argument("--frames", type=int, default=600, help="frames to play at most")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    # OpenCV's own thread pool would do part of a resize on threads the recorder's CPU time
    # does not count: one thread here, so every CPU second is the recorder's.
    cv2.setNumThreads(1)
    scale_to = tuple(int(v) for v in args.scale_to.split("x")) if args.scale_to else None
    images, fps = load(args.source, args.fps, args.frames)
    seconds = len(images) / fps
    shape = (scale_to[1], scale_to[0]) if scale_to else images[0].shape[:2]
    height, width = shape
    print(f"{args.source}: {len(images)} frames of {width}x{height} at {fps:g} fps "
          f"({seconds:.1f} s of camera time)")
    per_hour = 3600 / seconds
    results = []
    for fmt in ("webm", "mp4"):
        for heatmap in (False, True):
            for clip_height in (480, 720):
                if clip_height != 480 and clip_size(shape, clip_height)[1] == \
                        clip_size(shape, 480)[1]:
                    continue  # never scaled up: the same as 480
                config = ClipConfig(format=fmt, heatmap=heatmap, height=clip_height,
                                    max_seconds=3600)
                ring = run(images, fps, config, False, scale_to)
                full = run(images, fps, config, True, scale_to)
                row = {"format": fmt, "heatmap": heatmap,
                       "height": clip_size(shape, clip_height)[1],
                       "ring_cpu_s_per_camera_hour": ring["cpu_s"] * per_hour,
                       "alert_cpu_s_per_alert_hour": full["cpu_s"] * per_hour,
                       "alert_mb_per_alert_hour": full["bytes"] / 1e6 * per_hour,
                       "kbit_s": full["bytes"] * 8 / seconds / 1000}
                results.append(row)
                print(f"{fmt:4s} heatmap {'on ' if heatmap else 'off'} {row['height']:4d} lines: "
                      f"ring {row['ring_cpu_s_per_camera_hour']:5.0f} CPU-s per camera-hour "
                      f"({row['ring_cpu_s_per_camera_hour'] / 36:.1f}% of a core); an hour of "
                      f"alerts {row['alert_cpu_s_per_alert_hour']:5.0f} CPU-s "
                      f"({row['alert_cpu_s_per_alert_hour'] / 36:.1f}%), "
                      f"{row['alert_mb_per_alert_hour']:4.0f} MB ({row['kbit_s']:.0f} kbit/s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"source": args.source, "frames": len(images), "fps": fps,
                       "size": [width, height], "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
