"""LiveScorer: warm-up after a gap, causal trailing mean, baseline learned from the first frames."""

import pytest

from clipwatch.model.live_score import LiveScorer
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration

CAL = Calibration(e_lo=10.0, e_hi=20.0, threshold=0.5, false_alarm_rate=0.01, data="t",
                  frames=100)


def test_warm_up_frames_get_no_verdict_and_stay_out_of_the_mean():
    scorer = LiveScorer(ScoringOptions(smooth=3), CAL, warmup_frames=2)
    assert scorer.push(500.0).regularity is None
    assert scorer.push(400.0).regularity is None
    first = scorer.push(10.0)
    assert first.error == 10.0 and first.regularity == pytest.approx(1.0)
    assert scorer.push(16.0).regularity == pytest.approx(1 - (13.0 - 10.0) / 20.0)
    scorer.reset()  # a gap: warm-up again, and the mean starts afresh
    assert scorer.push(10.0).regularity is None
    scorer.push(10.0)
    assert scorer.push(30.0).error == 30.0


def test_overlap_is_left_out_live():
    assert LiveScorer(ScoringOptions(overlap=True, smooth=9), CAL).scoring.name == "frame+smooth9"


def test_baseline_is_learned_from_the_first_frames():
    scorer = LiveScorer(ScoringOptions(), CAL, baseline_frames=20, warmup_frames=0)
    assert scorer.learning
    for i in range(20):
        assert scorer.push(100.0 + i).regularity is None
    assert not scorer.learning
    assert scorer.calibration.e_lo == 100.0 and scorer.calibration.e_hi == 119.0
    assert scorer.push(100.0).regularity == pytest.approx(1.0)
    assert scorer.push(150.0).regularity < scorer.calibration.threshold


def test_warm_up_frames_count_toward_the_baseline_but_not_its_statistics():
    scorer = LiveScorer(ScoringOptions(), CAL, baseline_frames=30, warmup_frames=9)
    for i in range(30):
        scorer.push(1000.0 if i < 9 else 100.0 + i)
    assert not scorer.learning  # learned after exactly the first 30 frames
    assert scorer.calibration.e_hi == 129.0  # the warm-up's 1000s left out


def test_an_uncalibrated_model_gives_no_verdict():
    scorer = LiveScorer(ScoringOptions(), None, warmup_frames=0)
    assert scorer.push(1.0).regularity is None
