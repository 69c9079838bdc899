"""Frames in, e(t) out: preprocessing, the clip buffer and batched inference for one source.

Every frame is scored exactly once, by the first clip that contains it as a new frame
(`Clip.new_positions`); with stride 1 that is the clip ending at the frame, as DESIGN.md
defines e(t). The first full window also scores its first T-1 frames, so a video's every
frame has a score. Clips are batched up to `batch_size` before inference (offline
throughput); live use passes batch_size=1 for the lowest latency.

For offline scoring options that need more than the newest frames (the mean over overlapping
clips), the scorer can also keep every clip's per-position errors (`ClipErrors`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipwatch.model.detector import Detector
from clipwatch.model.scoring import error_maps, frame_errors, patch_errors
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.stream.clip_buffer import Clip, ClipBuffer
from clipwatch.stream.preprocess import InputSpec, preprocess
from clipwatch.stream.sources import Frame


@dataclass(frozen=True)
class FrameScore:
    index: int
    timestamp: float
    error: float  # e(t) under the scorer's measure (whole frame, or worst patch)
    # With keep_maps (the heatmap, DESIGN.md):
    error_map: np.ndarray | None = None  # (S, S) per-pixel squared error of this frame
    image: np.ndarray | None = None  # the decoded frame it belongs to, for overlays


@dataclass(frozen=True)
class ClipErrors:
    """One clip's error at each of its positions, for every measure the scorer computes."""

    indices: tuple[int, ...]  # source frame index at each position
    new: int  # how many of the last positions are new frames (see Clip.new)
    errors: dict[str, np.ndarray]  # measure ('frame', 'patch32', ...) -> (T,)


class ClipScorer:
    """Scores the frames of one source as they arrive.

    `patch` picks the measure of FrameScore.error (0: whole frame); `extra_patches` adds
    measures to the kept ClipErrors, so one inference pass can compare several.
    """

    def __init__(self, detector: Detector | None, stride: int = 1, batch_size: int = 8,
                 keep_maps: bool = False, patch: int = 0, keep_clip_errors: bool = False,
                 extra_patches: tuple[int, ...] = (), spec: InputSpec | None = None,
                 clip_length: int | None = None) -> None:
        self.detector = detector
        self.spec = spec or detector.input_spec
        # clip_length=1 serves a model that carries its own state from frame to frame: it
        # steps through every frame, whatever the stride asked of the clip models.
        if clip_length is None:
            self.buffer = ClipBuffer(self.spec.clip_length, stride)
        else:
            self.buffer = ClipBuffer(clip_length, min(stride, clip_length))
        self.batch_size = max(1, batch_size)
        self.keep_maps = keep_maps
        self.patch = patch
        self.patches = tuple(dict.fromkeys((0, patch, *extra_patches)))  # ordered, unique
        self.keep_clip_errors = keep_clip_errors
        self.clip_errors: list[ClipErrors] = []
        self._pending: list[Clip] = []
        # Frames waiting for their score: index -> (timestamp, decoded image if keep_maps).
        self._waiting: dict[int, tuple[float, np.ndarray | None]] = {}
        self.clips_scored = 0
        # Per-source caches of the fast reconstructors (see reconstructors.py): encoded
        # features by frame index, and a carried ConvLSTM state.
        self.features: dict[int, np.ndarray] = {}
        self.state: list[np.ndarray] | None = None

    def add(self, frame: Frame) -> Clip | None:
        """Buffer one decoded frame without running the model; returns a clip when one is due.

        The live service uses this to batch clips from several cameras into one inference
        (`score` then turns that batch's reconstructions into this source's scores).
        """
        self._waiting[frame.index] = (frame.timestamp, frame.image if self.keep_maps else None)
        return self.buffer.push(frame.index, preprocess(frame.image, self.spec))

    def reset(self) -> list[int]:
        """After a gap in the source: forget the buffered frames, so no clip spans the gap.

        Clips already returned by `add` can still be scored; the frames no clip has taken
        are dropped unscored, and their indices returned.
        """
        dropped = list(self.buffer.unscored())
        for index in dropped:
            self._waiting.pop(index, None)
        self.buffer.reset()
        self.features.clear()
        self.state = None
        return dropped

    def push(self, frame: Frame) -> list[FrameScore]:
        """Add one decoded frame; returns the scores that became available."""
        clip = self.add(frame)
        if clip is not None:
            self._pending.append(clip)
        if len(self._pending) >= self.batch_size:
            return self._run()
        return []

    def flush(self) -> list[FrameScore]:
        """At the end of the source: score the frames still waiting."""
        clip = self.buffer.flush()
        if clip is not None:
            self._pending.append(clip)
        return self._run() if self._pending else []

    def _run(self) -> list[FrameScore]:
        clips, self._pending = self._pending, []
        batch = np.stack([c.frames for c in clips])  # (B, T, 1, S, S)
        return self.score(clips, batch, self.detector.reconstruct(batch))

    def score_new(self, clip: Clip, recon_new: np.ndarray) -> list[FrameScore]:
        """Scores of one clip's new frames from their reconstructions (new, 1, S, S) alone."""
        positions = list(clip.new_positions)
        maps = error_maps(clip.frames[positions, 0], recon_new[:, 0])  # (new, S, S)
        errors = patch_errors(maps, self.patch) if self.patch else frame_errors(maps)
        self.clips_scored += 1
        return [self._frame_score(clip.indices[pos], errors[k], maps[k])
                for k, pos in enumerate(positions)]

    def _frame_score(self, index: int, error: float,
                     error_map: np.ndarray | None) -> FrameScore:
        """The score of a waiting frame, which stops waiting."""
        timestamp, image = self._waiting.pop(index)
        return FrameScore(index=index, timestamp=timestamp, error=float(error),
                          error_map=error_map if self.keep_maps else None, image=image)

    def score(self, clips: list[Clip], batch: np.ndarray, recon: np.ndarray) -> list[FrameScore]:
        """Scores of the new frames of `clips`, given their stacked frames and reconstructions."""
        maps = error_maps(batch[:, :, 0], recon[:, :, 0])  # (B, T, S, S)
        measures = {  # measure name -> (B, T)
            ScoringOptions(patch=p).measure: patch_errors(maps, p) if p else frame_errors(maps)
            for p in self.patches
        }
        errors = measures[ScoringOptions(patch=self.patch).measure]
        self.clips_scored += len(clips)
        scores = []
        for b, clip in enumerate(clips):
            if self.keep_clip_errors:
                self.clip_errors.append(ClipErrors(
                    clip.indices, clip.new, {k: v[b].copy() for k, v in measures.items()}))
            # Each new frame's own error map (at stride 1, the clip's newest frame: the
            # DESIGN.md heatmap); copied so the batch's maps can be freed.
            scores.extend(self._frame_score(clip.indices[pos], errors[b, pos],
                                            maps[b, pos].copy() if self.keep_maps else None)
                          for pos in clip.new_positions)
        return scores
