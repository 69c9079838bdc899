"""Sharing the scoring capacity among cameras: which cameras sample their frames down, and
to what rate. Pure: demands and the measured cost of a clip in, per-camera frame rates out,
so it is tested without threads or clocks (the inference loop applies the plan).
"""

from __future__ import annotations

from dataclasses import dataclass

HEADROOM = 0.85  # plan for this share of the measured scoring capacity


@dataclass(frozen=True)
class CameraDemand:
    camera: str
    fps_in: float  # the camera's measured arrival rate (frames/s)
    stride: int  # frames between clips scored
    sampled: bool  # whether the camera is being sampled down now


def plan_rates(demands: list[CameraDemand],
               seconds_per_clip: float | None) -> dict[str, float | None]:
    """Water-filling: a camera that needs less than an equal share of the capacity keeps all
    its frames, the rest split what is left and sample their frames down evenly, so no
    backlog builds and latency stays bounded. Returns camera -> the frame rate to keep at
    (None: every frame); cameras left out of the result keep what they have. Sampling is
    lifted once demand falls well below capacity."""
    if not seconds_per_clip or not demands:
        return {}
    capacity = HEADROOM / seconds_per_clip  # clips/s
    clips_wanted = [(d.fps_in / d.stride, d) for d in demands]
    total = sum(c for c, _ in clips_wanted)
    if total <= capacity * 0.7:
        return {d.camera: None for d in demands}
    if total <= capacity:
        # Fits, but not by much: leave it. Sampling in force stays until demand falls well
        # below capacity (the 70% above), so a camera near the limit does not flap.
        return {}
    plan: dict[str, float | None] = {}
    remaining, left = capacity, len(clips_wanted)
    for wanted, d in sorted(clips_wanted, key=lambda c: c[0]):
        clips = min(wanted, remaining / left)
        plan[d.camera] = None if clips >= wanted else clips * d.stride
        remaining -= clips
        left -= 1
    return plan
