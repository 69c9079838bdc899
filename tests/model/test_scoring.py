"""Scoring formulas (DESIGN.md definitions), calibration and the pooled frame-level metrics."""

import numpy as np
import pytest

from clipwatch.errors import DatasetError
from clipwatch.model.calibration import calibrate_errors
from clipwatch.model.metrics import equal_error_rate, frame_auc, has_both_classes
from clipwatch.model.scoring import (
    causal_regularity,
    error_maps,
    frame_errors,
    paper_regularity,
)
from clipwatch.model.sidecar import Calibration


def test_frame_error_is_the_sum_of_squared_pixel_differences():
    frames = np.zeros((2, 3, 4), np.float32)
    recon = np.zeros((2, 3, 4), np.float32)
    recon[0, 1, 2] = 0.5
    recon[1] = -1.0
    maps = error_maps(frames, recon)
    assert maps.shape == (2, 3, 4)
    assert list(frame_errors(maps)) == [0.25, 12.0]


def test_error_maps_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        error_maps(np.zeros((2, 3)), np.zeros((3, 2)))


def test_paper_regularity_follows_hasan_et_al():
    errors = np.array([2.0, 4.0, 10.0, 6.0])
    s = paper_regularity(errors)
    # s(t) = 1 - (e(t) - min e) / max e: min -> 1, max -> min/max.
    assert s == pytest.approx([1.0, 0.8, 0.2, 0.6])
    assert s.argmin() == errors.argmax()


def test_causal_regularity_uses_calibrated_constants():
    cal = Calibration(e_lo=100.0, e_hi=400.0, threshold=0.5, false_alarm_rate=0.01, data="x",
                      frames=100)
    assert causal_regularity(np.array([100.0, 300.0, 500.0]), cal) == pytest.approx(
        [1.0, 0.5, 0.0])
    # With the video's own min and max it is the paper score.
    errors = np.array([3.0, 7.0, 5.0])
    own = Calibration(e_lo=3.0, e_hi=7.0, threshold=0.5, false_alarm_rate=0.01, data="x", frames=3)
    assert causal_regularity(errors, own) == pytest.approx(paper_regularity(errors))


def test_calibration_threshold_meets_the_false_alarm_rate():
    errors = np.random.default_rng(0).gamma(9.0, 100.0, size=5000)
    cal = calibrate_errors(errors, 0.01, "synthetic")
    assert cal.e_lo == errors.min() and cal.e_hi == errors.max()
    below = (causal_regularity(errors, cal) < cal.threshold).mean()
    assert below == pytest.approx(0.01, abs=0.002)


@pytest.mark.parametrize("far", [0.0, 0.5, 1.2])
def test_calibration_refuses_a_meaningless_rate(far):
    with pytest.raises(DatasetError, match="false-alarm rate"):
        calibrate_errors(np.arange(100.0), far, "x")


def test_auc_and_eer_on_separable_and_inverted_scores():
    abnormal = np.array([False] * 50 + [True] * 50)
    regularity = np.linspace(1, 0, 100)  # abnormal frames are the least regular
    assert frame_auc(regularity, abnormal) == 1.0
    assert equal_error_rate(regularity, abnormal) == 0.0
    assert frame_auc(-regularity, abnormal) == 0.0
    assert equal_error_rate(-regularity, abnormal) == 1.0


def test_eer_is_near_half_for_uninformative_scores():
    rng = np.random.default_rng(1)
    abnormal = rng.random(20000) < 0.3
    regularity = rng.random(20000)
    assert frame_auc(regularity, abnormal) == pytest.approx(0.5, abs=0.02)
    assert equal_error_rate(regularity, abnormal) == pytest.approx(0.5, abs=0.02)


def test_eer_where_the_rates_cross_between_roc_points():
    # 4 normal, 4 abnormal; one abnormal frame looks more regular than one normal frame.
    regularity = np.array([0.9, 0.8, 0.7, 0.35, 0.4, 0.3, 0.2, 0.1])
    abnormal = np.array([False, False, False, False, True, True, True, True])
    assert frame_auc(regularity, abnormal) == pytest.approx(15 / 16)
    assert equal_error_rate(regularity, abnormal) == pytest.approx(0.25)


def test_nan_scores_are_left_out_and_one_class_is_detected():
    assert not has_both_classes(np.zeros(5, bool))
    assert has_both_classes(np.array([True, False]))
    regularity = np.array([0.9, np.nan, 0.1])
    assert frame_auc(regularity, np.array([False, True, True])) == 1.0
