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
    run = clipwatch("evaluate", str(DEFAULT_MODEL), str(shared_data / "ucsd_ped2"),
                    "--clips", "02", "--normal-clips", "16", "--json", str(out),
                    "--plots", str(plots))
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
