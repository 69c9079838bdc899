"""ClipScorer: one source's frames in, its per-frame scores out. The one scoring path.

A live camera, a replayed clip and an evaluated test clip all go through it, in the same
order: preprocess -> clip window (`ClipBuffer`) -> a `ClipRequest` for inference (run by a
`Reconstructor`, possibly batched with other cameras' requests) -> per-frame errors from the
reconstructions -> the live score (`LiveScorer`: trailing mean, warm-up, calibration or a
learned baseline) -> `FrameScore`. What an analyst reads is what the service computes.

Every frame is scored exactly once, by the first clip that holds it as a new frame; with
stride 1 that is the clip ending at the frame, as DESIGN.md defines e(t). The first full
window also scores its first T-1 frames, so a source's every frame has an error.

For offline scoring options that need more than the newest frames (the mean over
overlapping clips, other patch sizes), the scorer can ask for every position of each clip
and keep every clip's per-position errors (`ClipErrors`): an offline reading of the same
inference, never what the service alerts on.

Masks and zones (`ScorerSettings.masks`, `.zones`, polygons in the source frame's
coordinates; model/regions.py) are rasterized for the frame size the scorer sees: masked
pixels are zeroed in the error maps, so they count in neither e(t) nor the heatmap, and
each zone gets its own e(t) and live score (`ZoneScore`), with its own baseline where the
source learns one. The same settings score a camera live and a replay offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipwatch.model.live_score import LiveScore, LiveScorer
from clipwatch.model.reconstructor import ClipRequest
from clipwatch.model.regions import Polygon, RegionWeights, ZoneShape, region_weights
from clipwatch.model.scoring import error_maps, frame_errors, patch_errors
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration
from clipwatch.stream.clip_buffer import ClipBuffer
from clipwatch.stream.preprocess import InputSpec, preprocess
from clipwatch.stream.sources import Frame


@dataclass(frozen=True)
class ZoneScore:
    """One zone's score of a frame: as FrameScore's, over the zone's pixels."""

    name: str
    error: float  # the zone's e(t), area-scaled under the 'frame' measure (regions.py)
    score_error: float
    regularity: float | None


@dataclass(frozen=True)
class FrameScore:
    index: int
    timestamp: float
    error: float  # e(t) under the scorer's measure (whole frame, or worst patch)
    # The live score's error: the trailing mean of e(t) (e(t) itself in warm-up frames)
    # and the causal regularity from it (None in warm-up, while a baseline is learned, or
    # with no calibration).
    score_error: float
    regularity: float | None
    # With keep_maps (the heatmap, DESIGN.md):
    error_map: np.ndarray | None = None  # (S, S) per-pixel squared error of this frame
    image: np.ndarray | None = None  # the decoded frame it belongs to, for overlays
    zones: tuple[ZoneScore, ...] = ()  # one per zone of the settings, in their order


@dataclass(frozen=True)
class ClipErrors:
    """One clip's error at each decoded position, for every measure the scorer computes."""

    indices: tuple[int, ...]  # source frame index at each decoded position
    new: int  # how many of the last positions are new frames (see ClipRequest.new)
    errors: dict[str, np.ndarray]  # measure ('frame', 'patch32', ...) -> (positions,)


@dataclass(frozen=True)
class ScorerSettings:
    """How one source is scored: the model's input and scoring, and the live score's
    calibration (the model's, a camera's own, or a baseline learned from the first frames)."""

    spec: InputSpec
    scoring: ScoringOptions
    calibration: Calibration | None = None
    stride: int = 1
    clip_length: int | None = None  # the reconstructor's (None: the model's clip length)
    baseline_frames: int | None = None
    false_alarm_rate: float = 0.01
    masks: tuple[Polygon, ...] = ()  # frame pixels counted nowhere (model/regions.py)
    zones: tuple[ZoneShape, ...] = ()  # frame parts scored on their own


class ClipScorer:
    """Scores the frames of one source (camera id `camera`) as they arrive.

    `keep_maps` keeps each frame's error map and image (heatmaps); `all_positions` asks
    inference for every position of each clip and keeps `clip_errors` under the scoring's
    measure and `extra_patches` (offline evaluation of other scoring options).
    """

    def __init__(self, camera: str, settings: ScorerSettings, keep_maps: bool = False,
                 all_positions: bool = False, extra_patches: tuple[int, ...] = ()) -> None:
        self.camera = camera
        self.settings = settings
        self.spec = settings.spec
        ClipBuffer.check_stride(self.spec.clip_length, settings.stride)  # the model's clips
        length = settings.clip_length or self.spec.clip_length
        # A model that carries its own state steps through every frame (clips of one),
        # whatever stride the clip models were asked for.
        self.buffer = ClipBuffer(length, min(settings.stride, length))
        self.keep_maps = keep_maps
        self.all_positions = all_positions
        self.patch = settings.scoring.patch
        self.patches = tuple(dict.fromkeys((self.patch, *extra_patches)))  # ordered, unique
        self.clip_errors: list[ClipErrors] = []
        self.live = self._live_scorer()
        # Each zone has its own live score: its own trailing mean, and its own baseline where
        # the source learns one (a zone's normal activity is rarely the frame's average).
        self.zone_live = {zone.name: self._live_scorer() for zone in settings.zones}
        self.regions: RegionWeights | None = None  # rasterized for the frame size seen
        self.frame_size: tuple[int, int] | None = None  # (width, height) of the last frame
        # Frames waiting for their score: index -> (timestamp, decoded image if keep_maps).
        self._waiting: dict[int, tuple[float, np.ndarray | None]] = {}
        self._gap_starts: set[int] = set()  # first frames after a gap: the live score restarts
        self._after_gap = False
        self._fresh = True  # the next request restarts the reconstructor's caches
        self.clips_scored = 0

    def _live_scorer(self) -> LiveScorer:
        s = self.settings
        return LiveScorer(s.scoring, s.calibration, s.baseline_frames, s.false_alarm_rate,
                          warmup_frames=self.spec.clip_length - 1)

    @property
    def stride(self) -> int:
        return self.buffer.stride

    def _fit_regions(self, image: np.ndarray) -> None:
        """Note the frame size; rasterize masks and zones again when it changes."""
        size = (int(image.shape[1]), int(image.shape[0]))
        self.frame_size = size
        if not (self.settings.masks or self.settings.zones):
            return
        if self.regions is None or self.regions.frame_size != size:
            self.regions = region_weights(self.settings.masks, self.settings.zones, size,
                                          self.spec.size, source=self.camera)

    def add(self, frame: Frame) -> ClipRequest | None:
        """Buffer one decoded frame; returns the request for inference when a clip is due.

        Raises ValueError for a frame that cannot be preprocessed (an unusable shape)."""
        prepared = preprocess(frame.image, self.spec)
        self._fit_regions(frame.image)
        self._waiting[frame.index] = (frame.timestamp, frame.image if self.keep_maps else None)
        if self._after_gap:
            self._gap_starts.add(frame.index)
            self._after_gap = False
        return self._request(self.buffer.push(frame.index, prepared))

    def flush(self) -> ClipRequest | None:
        """At the end of the source: the request for the frames still waiting, if any."""
        return self._request(self.buffer.flush())

    def _request(self, clip) -> ClipRequest | None:
        if clip is None:
            return None
        decode = tuple(range(len(clip.indices))) if self.all_positions else \
            tuple(clip.new_positions)
        fresh, self._fresh = self._fresh, False
        return ClipRequest(self.camera, clip.indices, clip.frames, clip.new, decode, fresh)

    def drop(self, request: ClipRequest) -> list[int]:
        """A request that will never be scored (its inference failed): its new frames are
        forgotten, and their indices returned. Call `reset` too: the frames after it follow
        a gap."""
        dropped = [request.indices[p] for p in request.new_positions]
        for index in dropped:
            self._waiting.pop(index, None)
            self._gap_starts.discard(index)
        return dropped

    def reset(self) -> list[int]:
        """After a gap in the source: forget the buffered frames, so no clip spans the gap;
        the next request is marked fresh (the reconstructor's caches restart with it).

        Requests already returned by `add` can still be scored; the frames no clip has taken
        are dropped unscored, and their indices returned. The live score restarts (warm-up,
        trailing mean) at the first frame after the gap."""
        dropped = list(self.buffer.unscored())
        for index in dropped:
            self._waiting.pop(index, None)
            self._gap_starts.discard(index)
        self.buffer.reset()
        self._after_gap = True
        self._fresh = True
        return dropped

    def score(self, request: ClipRequest, recon: np.ndarray) -> list[FrameScore]:
        """Scores of one request's new frames, from the reconstructions of its decoded
        positions (len(decode), 1, S, S)."""
        decode = list(request.decode)
        maps = error_maps(request.frames[decode, 0], recon[:, 0])  # (positions, S, S)
        regions = self.regions
        if regions is not None and regions.keep is not None:
            # Masked pixels count in neither e(t) nor the heatmap (and e(t) is not rescaled
            # for the pixels left out: regions.py says why).
            maps *= regions.keep
        measures = {ScoringOptions(patch=p).measure: patch_errors(maps, p) if p
                    else frame_errors(maps) for p in self.patches}
        errors = measures[self.settings.scoring.measure]
        zone_errors = self._zone_errors(maps)  # (positions, zones)
        self.clips_scored += 1
        if self.all_positions:
            self.clip_errors.append(ClipErrors(
                tuple(request.indices[p] for p in decode), request.new, measures))
        where = {pos: k for k, pos in enumerate(decode)}
        return [self._frame_score(request.indices[pos], float(errors[where[pos]]),
                                  maps[where[pos]], zone_errors[where[pos]])
                for pos in request.new_positions]

    def _zone_errors(self, maps: np.ndarray) -> np.ndarray:
        """Each zone's e(t) at each position (positions, zones), under the scoring's measure:
        the (masked) error inside the zone, area-scaled for 'frame' (regions.py)."""
        regions = self.regions
        if regions is None or not regions.zone_names:
            return np.zeros((len(maps), len(self.settings.zones)))
        if self.patch:
            return np.stack([patch_errors(maps * weight, self.patch)
                             for weight in regions.zone_weights], axis=-1)
        flat = maps.reshape(len(maps), -1).astype(np.float64)
        sums = flat @ regions.zone_weights.reshape(len(regions.zone_names), -1).T.astype(
            np.float64)
        return sums * regions.zone_scales

    def _frame_score(self, index: int, error: float, error_map: np.ndarray,
                     zone_errors: np.ndarray) -> FrameScore:
        """The score of a waiting frame, which stops waiting."""
        timestamp, image = self._waiting.pop(index)
        if index in self._gap_starts:
            self._gap_starts.discard(index)
            self.live.reset()
            for live in self.zone_live.values():
                live.reset()
        regions = self.regions
        if regions is not None and regions.keep is not None and not regions.keep_scale:
            live = LiveScore(error, None)  # masked all over: nothing to judge (nor learn)
        else:
            live = self.live.push(error)
        zones = []
        for k, (zone, zone_error) in enumerate(zip(self.settings.zones, zone_errors,
                                                   strict=True)):
            if regions is None or not regions.zone_scales[k]:
                zones.append(ZoneScore(zone.name, 0.0, 0.0, None))  # no pixel: no verdict
                continue
            zone_live = self.zone_live[zone.name].push(float(zone_error))
            zones.append(ZoneScore(zone.name, float(zone_error), zone_live.error,
                                   zone_live.regularity))
        return FrameScore(index=index, timestamp=timestamp, error=error,
                          score_error=live.error, regularity=live.regularity,
                          error_map=error_map.copy() if self.keep_maps else None, image=image,
                          zones=tuple(zones))
