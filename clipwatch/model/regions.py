"""Masks and zones: polygons in a camera frame's pixel coordinates, checked, and rasterized
into per-pixel weights over the model's input (S x S, 227 for the shipped model).

A mask's pixels count toward nothing: not e(t), not the heatmap, not any zone. A zone is
scored apart from the whole frame: its own e(t) from the error map inside it (less what a
mask covers). Coordinates are those of the frames the service reads (after the
`live.max_frame_pixels` downscale: the frames the viewer shows), x to the right, y down;
the preprocessing resizes a frame to S x S without keeping its aspect, so x and y scale
apart.

Calibration. e_lo/e_hi (and a threshold) are calibrated on whole frames, e(t) being a sum
over pixels. Masks and zones keep them comparable in two different ways:

- A masked e(t) is the sum over the pixels that count, not rescaled. A mask only takes
  error away, so against a fixed calibration (the model's, the camera's own) it can only
  make a frame read more regular, never less: masking the calm Ped2 lawn and
  buildings (37% of the frame) moves the test clips' mean regularity on normal frames
  from 0.013 to 0.042, where scaling the sum up by the area (all pixels / pixels counted)
  would move it to -0.85 and put 99% of the normal frames under the threshold instead of
  91% (scripts/mask_effect.py, README "Masks and zones"): the pixels people mask are rarely
  of average activity. Masking a busy nuisance (a road, trees) lowers e(t), as it should.
- A zone's e(t) is scaled by (all pixels / zone pixels counted), the whole-frame sum the
  zone would give if the frame were like it: unscaled, a small zone's sum would always
  look regular against whole-frame constants. This is only an estimate (a zone on a
  walkway reads less regular than a lawn), so where a camera learns its baseline
  (`baseline_frames`) each zone learns its own from the same frames, which makes the
  scale irrelevant (e_lo, e_hi and the threshold learned scale with it): the way to use
  zones. Otherwise give a zone its own threshold.

The 'patchK' measures (the worst KxK window) need neither: a window's sum does not depend
on the area around it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

MIN_POINTS = 3
MAX_POINTS = 64  # per polygon: enough for any outline clicked by hand
MAX_MASKS = 16
MAX_ZONES = 16
MAX_COORDINATE = 100_000  # frames are at most live.max_frame_pixels (<= 1e8) pixels
_SHIFT = 4  # fillPoly's fractional bits: polygon corners keep 1/16-pixel precision
_SUPERSAMPLE = 4  # polygons are drawn this many times finer, then averaged down

Point = tuple[int, int]
Polygon = tuple[Point, ...]


@dataclass(frozen=True)
class ZoneShape:
    """A named zone as the scorer needs it (the config's CameraZone less its threshold)."""

    name: str
    polygon: Polygon


# -- geometry ----------------------------------------------------------------------------


def _orient(a: Point, b: Point, c: Point) -> int:
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (cross > 0) - (cross < 0)


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    """p, known to be collinear with a-b, lies within the segment's bounding box."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and \
        min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments a-b and c-d share at least one point (crossing, touching or overlapping)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if o1 != o2 and o3 != o4:
        return True
    return (o1 == 0 and _on_segment(a, b, c)) or (o2 == 0 and _on_segment(a, b, d)) or \
        (o3 == 0 and _on_segment(c, d, a)) or (o4 == 0 and _on_segment(c, d, b))


def polygon_area(points: Sequence[Point]) -> float:
    """The area enclosed (shoelace formula), in square pixels."""
    n = len(points)
    return abs(sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                   for i in range(n))) / 2


def polygon_problem(points: Sequence[Point]) -> str | None:
    """Why `points` is not a simple polygon (None when it is): too few or too many points,
    a point repeated, no area, or edges that cross or touch (self-intersecting)."""
    n = len(points)
    if n < MIN_POINTS:
        return f"a polygon needs at least {MIN_POINTS} points, got {n}"
    if n > MAX_POINTS:
        return f"a polygon has at most {MAX_POINTS} points, got {n}"
    if len(set(points)) != n:
        return "a polygon may not repeat a point"
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = edges[i]
            c, d = edges[j]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share a corner; they must not fold back over each other.
                shared, other_i, other_j = (b, a, d) if j == i + 1 else (a, b, c)
                if _orient(other_i, shared, other_j) == 0 and \
                        (_on_segment(shared, other_i, other_j) or
                         _on_segment(shared, other_j, other_i)):
                    return f"the polygon is self-intersecting (edges {i + 1} and {j + 1} " \
                           "overlap)"
                continue
            if _segments_meet(a, b, c, d):
                return f"the polygon is self-intersecting (edges {i + 1} and {j + 1} cross)"
    if polygon_area(points) == 0:
        return "the polygon encloses no area"
    return None


def outside_problem(polygon: Sequence[Point], frame_size: tuple[int, int]) -> str | None:
    """Why `polygon` does not fit a frame of `frame_size` (width, height), or None. Corners
    may lie on the frame's far edges (x = width, y = height): a mask can cover the last
    column."""
    width, height = frame_size
    for x, y in polygon:
        if x > width or y > height:
            return f"point ({x}, {y}) lies outside the {width}x{height} frame"
    return None


# -- rasterizing -------------------------------------------------------------------------


def rasterize(polygons: Sequence[Sequence[Point]], frame_size: tuple[int, int],
              size: int) -> np.ndarray:
    """(size, size) bool: the pixels of the model's input that the polygons cover (at least
    half of each pixel; parts outside the frame are clipped).

    OpenCV's fillPoly also sets every pixel its outline touches, which would grow a polygon
    by up to a pixel of the 227x227 input on each side; so the polygons are drawn at
    `_SUPERSAMPLE` times the size and each pixel's covered share is averaged down. A frame
    pixel x spans [x, x+1); OpenCV puts a pixel's centre at its integer coordinate, hence
    the -0.5."""
    width, height = frame_size
    big = size * _SUPERSAMPLE
    out = np.zeros((big, big), dtype=np.uint8)
    scale = np.array([big / width, big / height]) * (1 << _SHIFT)
    shapes = [np.round(np.asarray(p, dtype=np.float64) * scale - 0.5 * (1 << _SHIFT))
              .astype(np.int32) for p in polygons]
    if shapes:
        cv2.fillPoly(out, shapes, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    covered = cv2.resize(out.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return covered >= 0.5


@dataclass(frozen=True)
class RegionWeights:
    """Masks and zones of one source, rasterized for one frame size.

    `keep` is 1 where a pixel counts and 0 where a mask covers it (None: no masks), and
    `keep_scale` all pixels / those counted (not applied to e(t): the module's docstring).
    `zone_weights` (Z, S, S) are the zones less the masks, `zone_scales` their area scales
    under the 'frame' measure (0 for a zone the masks cover entirely: it scores 0)."""

    frame_size: tuple[int, int]
    keep: np.ndarray | None
    keep_scale: float
    zone_names: tuple[str, ...]
    zone_weights: np.ndarray
    zone_scales: np.ndarray

    @property
    def masked_fraction(self) -> float:
        return 0.0 if self.keep is None else 1.0 - float(self.keep.mean())


def region_weights(masks: Sequence[Sequence[Point]], zones: Sequence[ZoneShape],
                   frame_size: tuple[int, int], size: int,
                   source: str = "camera") -> RegionWeights:
    """Rasterize `masks` and `zones` for frames of `frame_size` (width, height) into the
    model's `size` x `size` input. Polygons reaching outside the frame are clipped, with a
    warning (the API refuses them when it knows the frame size; a config file, or a camera
    whose resolution changed, can still hold them)."""
    for what, polygon in [("mask", m) for m in masks] + [(f"zone {z.name!r}", z.polygon)
                                                         for z in zones]:
        problem = outside_problem(polygon, frame_size)
        if problem:
            log.warning("%s: a %s reaches outside the frame (%s): clipped", source, what,
                        problem)
    total = size * size
    keep = None
    keep_scale = 1.0
    if masks:
        keep = (~rasterize(masks, frame_size, size)).astype(np.float32)
        kept = float(keep.sum())
        keep_scale = total / kept if kept else 0.0
        if not kept:
            log.warning("%s: the masks cover the whole frame: it scores 0", source)
    weights = np.zeros((len(zones), size, size), dtype=np.float32)
    scales = np.zeros(len(zones), dtype=np.float64)
    for k, zone in enumerate(zones):
        inside = rasterize([zone.polygon], frame_size, size).astype(np.float32)
        if keep is not None:
            inside *= keep
        weights[k] = inside
        counted = float(inside.sum())
        scales[k] = total / counted if counted else 0.0
        if not counted:
            log.warning("%s: zone %r covers no pixel the model sees (masked, or too small): "
                        "it scores 0", source, zone.name)
    return RegionWeights(frame_size, keep, keep_scale, tuple(z.name for z in zones), weights,
                         scales)

