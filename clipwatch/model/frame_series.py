"""From per-clip errors to one e(t) per frame, under the scoring options.

Without `overlap` a frame's error comes from the first clip that holds it as a new frame
(DESIGN.md's e(t) at stride 1); with it, from the mean over every clip that holds it. The
trailing mean (`smooth`) runs last, over the frame series, as the live score runs it: the
warm-up frames at the start keep their own error and stay out of it.
"""

from __future__ import annotations

import numpy as np

from clipwatch.model.clip_scorer import ClipErrors
from clipwatch.model.scoring import live_trailing_mean
from clipwatch.model.scoring_options import ScoringOptions


def frame_series(clips: list[ClipErrors], options: ScoringOptions,
                 warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(source frame indices in order, e(t) for each) over every frame the clips cover;
    `warmup`: the frames at the start the live score gives no verdict (clip length - 1)."""
    if not clips:
        return np.array([], dtype=int), np.array([], dtype=np.float64)
    key = options.measure
    last = max(c.indices[-1] for c in clips)
    sums = np.zeros(last + 1)
    counts = np.zeros(last + 1)
    for clip in clips:
        values = clip.errors[key]
        positions = range(len(clip.indices)) if options.overlap else \
            range(len(clip.indices) - clip.new, len(clip.indices))
        for pos in positions:
            sums[clip.indices[pos]] += values[pos]
            counts[clip.indices[pos]] += 1
    covered = np.flatnonzero(counts)
    errors = sums[covered] / counts[covered]
    return covered, live_trailing_mean(errors, options.smooth, warmup)
