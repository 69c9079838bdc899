"""A camera as the API and the viewer show it: its config (credentials masked) and its live
state (status, measured rates, counters, the calibration in force).

A failure's reason is generic for viewers ('cannot open the source'); admins (`detail`) read
the error itself, which may name a path or what a server answered."""

from __future__ import annotations

import time
from typing import Any

from clipwatch.config import CameraConfig
from clipwatch.server.grabber import CameraStatus
from clipwatch.server.pipeline import CameraPipeline
from clipwatch.stream.sources import mask_url


def camera_view(pipeline: CameraPipeline | None, camera: CameraConfig,
                detail: bool = False,
                frame_size: tuple[int, int] | None = None) -> dict[str, Any]:
    view = camera.model_dump(mode="json")
    view["source"] = mask_url(camera.source)
    view["frame_size"] = list(frame_size) if frame_size else None  # masks and zones fit it
    if pipeline is None:
        status = CameraStatus("stopped", "disabled", time.time())
        view.update(fps_in=None, sampled_fps=None, frames_sampled_out=0,
                    status=status.to_dict(), effective_threshold=camera.threshold,
                    frames_in=0, frames_scored=0, frames_dropped=0, regularity=None,
                    active_calibration=None)
        return view
    cal = pipeline.live.calibration
    view.update(
        fps_in=pipeline.grabber.fps_in, sampled_fps=pipeline.grabber.sample_fps,
        frames_sampled_out=pipeline.grabber.frames_sampled_out,
        status=pipeline.status.to_dict(detail), effective_threshold=pipeline.threshold,
        frames_in=pipeline.grabber.frames_in, frames_scored=pipeline.frames_scored,
        frames_dropped=pipeline.grabber.queue.dropped, regularity=pipeline.last_regularity,
        active_calibration=None if cal is None else
        {"e_lo": cal.e_lo, "e_hi": cal.e_hi, "threshold": cal.threshold, "data": cal.data})
    return view
