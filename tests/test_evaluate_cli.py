"""`clipwatch calibrate` and `clipwatch evaluate` as a user runs them, on real UCSD clips."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from clipwatch.model.sidecar import read_sidecar
from clipwatch.paths import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]


def clipwatch(*args: str):
    return subprocess.run([sys.executable, "-m", "clipwatch", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


@pytest.fixture
def model_copy(tmp_path):
    model = tmp_path / "model.onnx"
    shutil.copy(DEFAULT_MODEL, model)
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), model.with_suffix(".json"))
    return model


def test_calibration_on_a_real_normal_clip_meets_its_false_alarm_rate(shared_data, model_copy,
                                                                      tmp_path):
    ped2 = shared_data / "ucsd_ped2"
    run = clipwatch("calibrate", str(model_copy), str(ped2), "--clips", "16", "--far", "0.05",
                    "--scoring", "patch32+smooth5")
    assert run.returncode == 0, run.stderr
    cal = read_sidecar(model_copy).calibration
    # The frames the live score judges: all but the first clip's 9 warm-up frames.
    assert cal.frames == 150 - 9 and cal.false_alarm_rate == 0.05
    assert cal.scoring.name == "patch32+smooth5" and "16" in cal.data
    assert 0 < cal.e_lo < cal.e_hi
    # Replaying the same clip with the recalibrated model: 5% of its frames fall below.
    out = tmp_path / "normal.csv"
    run = clipwatch("replay", str(ped2 / "training" / "frames" / "16"), "--model",
                    str(model_copy), "--summary", "--out", str(out))
    assert run.returncode == 0, run.stderr
    causal = np.loadtxt(out, delimiter=",", skiprows=1, usecols=5)
    assert len(causal) == 150
    assert (causal[9:] < cal.threshold).sum() in (7, 8)  # the 5% quantile of 141 frames
    # The live column is the service's verdict: none in warm-up, the causal score after.
    live = np.genfromtxt(out, delimiter=",", skip_header=1, usecols=7)
    assert np.isnan(live[:9]).all()
    np.testing.assert_allclose(live[9:], causal[9:], rtol=1e-5)


def test_calibrate_refuses_an_unknown_clip(shared_data, model_copy):
    run = clipwatch("calibrate", str(model_copy), str(shared_data / "ucsd_ped2"), "--clips", "99")
    assert run.returncode == 1
    assert "no normal clip named 99" in run.stderr and "Traceback" not in run.stderr


def test_evaluate_reports_json_fields_and_plots_on_a_real_test_clip(shared_data, tmp_path):
    out, plots = tmp_path / "eval.json", tmp_path / "plots"
    # The 24 scoring options read every position of every clip: a clip variant (split).
    run = clipwatch("evaluate", str(DEFAULT_MODEL), str(shared_data / "ucsd_ped2"),
                    "--clips", "02", "--normal-clips", "16", "--json", str(out),
                    "--plots", str(plots), "--variant", "split")
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["frames"] == 180 and result["clips"] == 1
    assert result["frames_abnormal"] == 86  # Test002: 95-180
    for key in ("auc_paper", "auc_causal", "eer", "eer_causal"):
        assert 0.0 <= result[key] <= 1.0, key
    names = [v["name"] for v in result["variants"]]
    assert len(names) == len(set(names)) == 24
    own = next(v for v in result["variants"] if v["name"] == result["scoring"]["name"])
    assert own["auc_paper"] == pytest.approx(result["auc_paper"], abs=1e-4)
    assert all("auc_causal" in v for v in result["variants"])  # each calibrated on clip 16
    assert result["per_clip"][0]["name"] == "02"
    for name in ("regularity_02.png", "roc.png"):
        image = cv2.imread(str(plots / name))
        assert image is not None and image.shape[0] > 300, name
    assert "AUC paper" in run.stdout


def test_evaluate_refuses_a_folder_that_is_not_a_ucsd_root(shared_data):
    run = clipwatch("evaluate", str(DEFAULT_MODEL), str(shared_data / "video"))
    assert run.returncode == 1
    assert "is not a UCSD dataset root" in run.stderr and "Traceback" not in run.stderr


# --- detection quality: localization and alerts ----------------------------------------------


def _check_quality_fields(result: dict, frames_judged: int) -> None:
    assert 0.0 <= result["auc_paper_minmax"] <= 1.0
    loc = result["localization"]
    assert loc["frames"] == frames_judged
    assert 0.0 <= loc["peak_in_mask"] <= 1.0 and 0.0 <= loc["pixel_auc"] <= 1.0
    alerts = result["alerts"]
    assert set(alerts) >= {"events", "events_detected", "alerts", "alerts_per_detected_event",
                           "false_alerts", "median_delay_frames"}
    assert 0 <= alerts["events_detected"] <= alerts["events"]
    assert 0 <= alerts["false_alerts"] <= alerts["alerts"]
    for key in ("auc_paper", "auc_causal", "eer", "frames", "per_clip", "calibration"):
        assert key in result, key  # the fields it had are all kept


def test_evaluate_finds_the_official_layouts_own_masks(shared_data, tmp_path):
    out = tmp_path / "eval.json"
    run = clipwatch("evaluate", str(DEFAULT_MODEL), str(shared_data / "ucsd_ped2_tif"),
                    "--no-compare", "--json", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["clips"] == 1
    _check_quality_fields(result, result["frames_abnormal"])  # Test001: 61-180, all masked
    assert result["alerts"]["events"] == 1
    assert "heatmap peak in mask" in run.stdout


def test_evaluate_reads_masks_beside_the_jpeg_layout(shared_data, tmp_path):
    out = tmp_path / "eval.json"
    masks = shared_data / "ucsd_ped2_masks"  # a parent of UCSDped2/Test is accepted too
    run = clipwatch("evaluate", str(DEFAULT_MODEL), str(shared_data / "ucsd_ped2"),
                    "--clips", "01", "--masks", str(masks), "--no-compare", "--json", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    _check_quality_fields(result, result["frames_abnormal"])


def test_evaluate_refuses_masks_that_do_not_fit(shared_data, tmp_path):
    ped2 = str(shared_data / "ucsd_ped2")
    run = clipwatch("evaluate", str(DEFAULT_MODEL), ped2, "--clips", "01", "--no-compare",
                    "--masks", str(shared_data / "video"))
    assert run.returncode == 1
    assert "no TestNNN_gt mask folders" in run.stderr and "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if "error:" in line]) == 1
    # Another clip's masks offered as clip 01's (Test003 has 150 frames, Test001 180).
    wrong = tmp_path / "Test"
    (wrong / "Test001_gt").mkdir(parents=True)
    for path in sorted((shared_data / "ucsd_ped2_masks/UCSDped2/Test/Test003_gt").iterdir()):
        shutil.copy(path, wrong / "Test001_gt" / path.name)
    run = clipwatch("evaluate", str(DEFAULT_MODEL), ped2, "--clips", "01", "--no-compare",
                    "--masks", str(wrong))
    assert run.returncode == 1
    assert "not this clip's masks" in run.stderr and "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if "error:" in line]) == 1


def test_peak_in_mask_counts_within_7_pixels_and_leaves_empty_masks_out():
    from clipwatch.quality import Localization, peak_in_mask

    y, x = np.mgrid[:227, :227]
    # A bump centred at (101, 101): smoothed, its maximum stays there.
    error_map = np.exp(-((y - 101) ** 2 + (x - 101) ** 2) / 200.0).astype(np.float32)
    for dx, counts in ((0, True), (7, True), (8, False)):
        mask = np.zeros((227, 227), bool)
        mask[101, 101 + dx] = True
        assert peak_in_mask(error_map, mask) is counts, dx
    assert peak_in_mask(error_map, np.zeros((227, 227), bool)) is None
    tally = Localization()
    near = np.zeros((227, 227), bool)
    near[96:106, 96:106] = True
    tally.add(error_map, near)
    tally.add(error_map, np.zeros((227, 227), bool))  # left out
    result = tally.to_dict()
    assert result["frames"] == 1 and result["peak_in_mask"] == 1.0
    assert result["pixel_auc"] > 0.5


def test_alert_events_on_synthetic_regularity():
    from clipwatch.config import AlertConfig
    from clipwatch.quality import AlertTally, alert_spans, intervals

    threshold = 0.5
    live = np.full(100, 0.9)
    live[:9] = np.nan  # warm-up: no verdict
    abnormal = np.zeros(100, bool)
    abnormal[20:40] = True  # event 1: detected, 3 frames late
    abnormal[60:70] = True  # event 2: missed
    live[23:45] = 0.1
    live[80:84] = 0.1  # too short to open an alert (5 frames needed)
    live[88:95] = 0.1  # a false alert
    assert intervals(abnormal) == [(20, 39), (60, 69)]
    assert alert_spans(live, threshold) == [(23, 54), (88, 99)]  # closes 10 calm frames after
    # Opening again within the merge gap (3 s: 30 frames) continues the same alert: the dip
    # at 70 joins the first alert (it closes at 85), and the one at 88 joins it again.
    again = live.copy()
    again[70:76] = 0.1
    assert alert_spans(again, threshold) == [(23, 99)]
    apart = AlertConfig(merge_seconds=0)
    assert alert_spans(again, threshold, apart) == [(23, 54), (70, 99)]  # 80-83 keep it open
    tally = AlertTally()
    tally.add(live, abnormal, threshold)
    assert tally.to_dict() == {"events": 2, "events_detected": 1, "alerts": 2,
                               "alerts_per_detected_event": 1.0, "false_alerts": 1,
                               "median_delay_frames": 3.0}
    # An alert already open when the event starts: no delay (floored at 0).
    early = np.full(100, 0.9)
    early[10:30] = 0.1
    tally = AlertTally()
    tally.add(early, abnormal, threshold)
    assert tally.to_dict()["median_delay_frames"] == 0.0
