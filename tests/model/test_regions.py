"""Masks and zones in the scorer: polygons checked and rasterized into the model's input,
masked pixels counted in neither e(t) nor the heatmap, and each zone scored on its own,
its e(t) area-scaled to read as a whole frame's (model/regions.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from clipwatch.model.clip_scorer import ClipScorer, ScorerSettings
from clipwatch.model.regions import (
    ZoneShape,
    outside_problem,
    polygon_problem,
    rasterize,
    region_weights,
)
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.stream.preprocess import InputSpec
from clipwatch.stream.sources import Frame

SPEC = InputSpec(clip_length=4, size=32)
WIDTH, HEIGHT = 64, 48  # the frames' size: not square, so x and y scale apart


@pytest.mark.parametrize("points, problem", [
    ([(0, 0), (10, 0), (10, 10), (0, 10)], None),
    ([(0, 0), (10, 0), (5, 5), (10, 10), (0, 10)], None),  # concave is fine
    ([(0, 0), (10, 0)], "at least 3 points"),
    ([(0, 0), (10, 10), (10, 0), (0, 10)], "edges 1 and 3 cross"),  # a bow tie
    ([(0, 0), (20, 0), (20, 20), (10, 0)], "self-intersecting"),  # a corner on an edge
    ([(0, 0), (10, 0), (10, 10), (0, 10), (0, 5), (0, 15)], "self-intersecting"),  # folds back
    ([(0, 0), (10, 0), (20, 0)], "self-intersecting"),  # a line
    ([(0, 0), (10, 0), (10, 10), (10, 0)], "repeat a point"),
    ([(i, i * i) for i in range(65)], "at most 64"),
])
def test_polygon_problems(points, problem):
    found = polygon_problem(points)
    assert (found is None) if problem is None else (problem in found), found


def test_a_polygon_may_reach_the_far_edges_but_not_beyond():
    assert outside_problem([(0, 0), (64, 0), (64, 48)], (WIDTH, HEIGHT)) is None
    assert "(65, 0) lies outside the 64x48 frame" in outside_problem([(0, 0), (65, 0), (9, 9)],
                                                                     (WIDTH, HEIGHT))


def test_rasterizing_scales_x_and_y_apart_to_the_model_input():
    whole = rasterize([[(0, 0), (WIDTH, 0), (WIDTH, HEIGHT), (0, HEIGHT)]], (WIDTH, HEIGHT), 32)
    assert whole.all()
    left = rasterize([[(0, 0), (WIDTH // 2, 0), (WIDTH // 2, HEIGHT), (0, HEIGHT)]],
                     (WIDTH, HEIGHT), 32)
    assert left[:, :16].all() and not left[:, 16:].any()
    top = rasterize([[(0, 0), (WIDTH, 0), (WIDTH, HEIGHT // 4), (0, HEIGHT // 4)]],
                    (WIDTH, HEIGHT), 32)
    assert top[:8].all() and not top[8:].any()


def test_zones_lose_what_masks_cover():
    left = ((0, 0), (32, 0), (32, 48), (0, 48))
    weights = region_weights([left], [ZoneShape("all", ((0, 0), (64, 0), (64, 48), (0, 48))),
                                      ZoneShape("hidden", ((0, 0), (16, 0), (16, 16)))],
                             (WIDTH, HEIGHT), 32)
    assert weights.masked_fraction == pytest.approx(0.5)
    assert weights.keep_scale == pytest.approx(2.0)
    assert weights.zone_scales[0] == pytest.approx(2.0)  # half the frame is left of it
    assert weights.zone_scales[1] == 0  # wholly masked: it scores 0


def frames(count: int) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [Frame(i, i / 10, rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
            for i in range(count)]


def scored(settings: ScorerSettings, count: int = 6, patch: int = 0):
    """Every frame scored against an all-zero reconstruction (the error is the input)."""
    settings = replace(settings, scoring=ScoringOptions(patch=patch))
    scorer = ClipScorer("cam", settings, keep_maps=True)
    out = []
    for frame in frames(count):
        request = scorer.add(frame)
        if request is not None:
            recon = np.zeros((len(request.decode), 1, SPEC.size, SPEC.size), np.float32)
            out.extend(scorer.score(request, recon))
    return scorer, out


def test_masked_pixels_count_in_neither_the_error_nor_the_heatmap():
    plain = ScorerSettings(spec=SPEC, scoring=ScoringOptions())
    left = ((0, 0), (32, 0), (32, 48), (0, 48))
    _, whole = scored(plain)
    scorer, masked = scored(replace(plain, masks=(left,)))
    assert scorer.frame_size == (WIDTH, HEIGHT)
    for a, b in zip(whole, masked, strict=True):
        assert not b.error_map[:, :16].any()  # the heatmap is blank under the mask
        np.testing.assert_array_equal(b.error_map[:, 16:], a.error_map[:, 16:])
        # e(t) is the sum over the pixels that count, not rescaled (regions.py says why)
        assert b.error == pytest.approx(a.error_map[:, 16:].sum(dtype=np.float64), rel=1e-6)
        assert b.error < a.error  # a mask only takes error away
        assert b.zones == ()


def test_each_zone_is_scored_on_its_own():
    plain = ScorerSettings(spec=SPEC, scoring=ScoringOptions())
    right = ZoneShape("right", ((32, 0), (64, 0), (64, 48), (32, 48)))
    every = ZoneShape("every", ((0, 0), (64, 0), (64, 48), (0, 48)))
    _, out = scored(replace(plain, zones=(right, every)))
    for score in out:
        right_score, every_score = score.zones
        assert right_score.name == "right" and every_score.name == "every"
        assert every_score.error == pytest.approx(score.error, rel=1e-6)  # no mask: the frame
        assert right_score.error == pytest.approx(
            2 * score.error_map[:, 16:].sum(dtype=np.float64), rel=1e-6)
        assert score.regularity is None and right_score.regularity is None  # uncalibrated
    # the patch measure: the worst window inside the zone, with no area scale
    _, patched = scored(replace(plain, zones=(right,)), patch=8)
    for score in patched:
        masked = score.error_map.copy()
        masked[:, :16] = 0
        assert score.zones[0].error <= score.error + 1e-6
        assert score.zones[0].error == pytest.approx(
            max(masked[y:y + 8, x:x + 8].sum() for y in range(25) for x in range(25)), rel=1e-5)


def test_a_frame_or_zone_with_no_pixel_left_gets_no_verdict():
    """Masks over everything (a config file can hold them; the API refuses them) leave
    nothing to judge: no regularity rather than a calibration learned from zeros."""
    whole = ((0, 0), (WIDTH, 0), (WIDTH, HEIGHT), (0, HEIGHT))
    plain = ScorerSettings(spec=SPEC, scoring=ScoringOptions(), baseline_frames=20)
    _, out = scored(replace(plain, masks=(whole,), zones=(ZoneShape("z", whole),)), count=40)
    assert all(s.error == 0 and s.regularity is None for s in out)
    assert all(s.zones[0].regularity is None for s in out)


def test_no_masks_no_zones_scores_as_before():
    plain = ScorerSettings(spec=SPEC, scoring=ScoringOptions())
    scorer, out = scored(plain)
    assert scorer.regions is None
    for score in out:
        assert score.error == pytest.approx(score.error_map.sum(dtype=np.float64), rel=1e-9)


def test_replay_takes_masks_as_a_camera_does(sample_clip, tmp_path):
    """`clipwatch replay --mask`: the same masks through the same scorer, offline."""
    import argparse
    import shutil

    from clipwatch.cli import _polygon
    from clipwatch.model.reconstructors import load_model
    from clipwatch.paths import DEFAULT_MODEL
    from clipwatch.replay import replay, replay_targets

    clip = tmp_path / "clip"
    clip.mkdir()
    for path in sorted(sample_clip.iterdir())[:20]:
        shutil.copy(path, clip / path.name)
    lawn = _polygon("0,0,360,0,360,90,0,90")
    assert lawn == ((0, 0), (360, 0), (360, 90), (0, 90))
    for bad in ("0,0,10,0", "0,0,10,10,10,0,0,10", "a,b,c", "0,0,-1,5,5,5"):
        with pytest.raises(argparse.ArgumentTypeError):
            _polygon(bad)
    model = load_model(DEFAULT_MODEL)
    targets = replay_targets(str(clip))
    plain = replay(targets, model, show_progress=False).clips[0]
    masked = replay(targets, model, show_progress=False, masks=(lawn,)).clips[0]
    assert len(masked.errors) == 20 and (masked.errors < plain.errors).all()
