"""Scoring options: patch maxima, trailing means, overlap means, and their names."""

import numpy as np
import pytest

from clipwatch.errors import ClipwatchError
from clipwatch.model.clip_scorer import ClipErrors
from clipwatch.model.frame_series import frame_series
from clipwatch.model.scoring import patch_errors, trailing_mean
from clipwatch.model.scoring_options import ScoringOptions


def test_patch_error_is_the_largest_window_sum():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 20, 24)).astype(np.float32)
    maps[1, 2, 5:9, 10:14] += 10.0  # a hot square
    got = patch_errors(maps, 4)
    assert got.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            m = maps[b, t]
            brute = max(m[y:y + 4, x:x + 4].sum() for y in range(17) for x in range(21))
            assert got[b, t] == pytest.approx(brute, rel=1e-4)
    assert got[1, 2] > 160  # the hot square dominates its frame


def test_trailing_mean_is_causal():
    errors = np.array([1.0, 3.0, 5.0, 7.0, 100.0])
    assert trailing_mean(errors, 1) == pytest.approx(errors)
    assert trailing_mean(errors, 3) == pytest.approx([1.0, 2.0, 3.0, 5.0, 112 / 3])
    # A spike only affects the frames at and after it.
    assert trailing_mean(errors, 3)[:4] == pytest.approx(trailing_mean(errors[:4], 3))


def clips_of(errors_by_end: dict[int, list[float]], length: int = 3) -> list[ClipErrors]:
    clips = []
    for n, (end, values) in enumerate(sorted(errors_by_end.items())):
        indices = tuple(range(end - length + 1, end + 1))
        clips.append(ClipErrors(indices, length if n == 0 else 1,
                                {"frame": np.array(values, dtype=float)}))
    return clips


def test_frame_series_newest_versus_overlap_mean():
    # Clips of 3 ending at frames 2, 3, 4; each value encodes (end, position).
    clips = clips_of({2: [1, 2, 3], 3: [20, 30, 40], 4: [300, 400, 500]})
    indices, newest = frame_series(clips, ScoringOptions(), warmup=0)
    assert list(indices) == [0, 1, 2, 3, 4]
    assert list(newest) == [1, 2, 3, 40, 500]
    _, mean = frame_series(clips, ScoringOptions(overlap=True), warmup=0)
    assert list(mean) == pytest.approx([1, (2 + 20) / 2, (3 + 30 + 300) / 3, (40 + 400) / 2, 500])
    _, smoothed = frame_series(clips, ScoringOptions(smooth=2), warmup=0)
    assert list(smoothed) == pytest.approx([1, 1.5, 2.5, 21.5, 270])
    # As the live score runs it: warm-up frames keep their own error, out of the mean.
    _, live = frame_series(clips, ScoringOptions(smooth=2), warmup=2)
    assert list(live) == pytest.approx([1, 2, 3, 21.5, 270])


@pytest.mark.parametrize("name", ["frame", "patch32", "frame+overlap", "patch16+overlap+smooth5",
                                  "frame+smooth9"])
def test_scoring_names_round_trip(name):
    options = ScoringOptions.parse(name)
    assert options.name == name
    assert ScoringOptions.from_dict(options.to_dict()) == options


@pytest.mark.parametrize("name", ["", "patchx", "frame+blur", "median", "frame+smooth0"])
def test_unknown_scoring_is_refused(name):
    with pytest.raises(ClipwatchError):
        ScoringOptions.parse(name)
