"""The validation measure: synthetic anomalies built from held-out normal clips, scored
through the live path (real clips, the shipped model)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipwatch.paths import DEFAULT_MODEL
from clipwatch.validation import (
    SEGMENT,
    START,
    busiest_box,
    fast_box_sequence,
    fast_sequence,
)

REPO = Path(__file__).resolve().parents[1]


def numbered_frames(n: int) -> list[np.ndarray]:
    """Frames whose pixels hold their own index (mod 256)."""
    frames = []
    for i in range(n):
        image = np.full((120, 160, 3), i % 256, np.uint8)
        frames.append(image)
    return frames


def test_a_fast_stretch_skips_frames_then_resumes_at_normal_speed():
    frames = numbered_frames(150)
    seq = fast_sequence("c", frames, 3)
    indices = [int(f[0, 0, 0]) for f in seq.images]
    assert indices[:START] == list(range(START))
    assert indices[START:START + SEGMENT] == list(range(START, START + 3 * SEGMENT, 3))
    assert indices[START + SEGMENT:] == list(range(START + 3 * SEGMENT, 150))
    assert seq.abnormal.sum() == SEGMENT and seq.abnormal[START:START + SEGMENT].all()


def test_the_fast_box_moves_fast_only_inside_the_busiest_box():
    frames = []
    for i in range(150):  # a bright square crossing a still scene, left to right
        image = np.zeros((120, 160, 3), np.uint8)
        image[40:60, i % 140:i % 140 + 20] = 255
        image[:, :, 1] = i % 256  # channel 1 tells which source frame a pixel comes from
        frames.append(image)
    y0, y1, x0, x1 = busiest_box(frames[START:START + 40])
    assert y0 <= 40 and y1 >= 60  # the box holds the mover's path
    seq = fast_box_sequence("c", frames, 2)
    assert seq.box is not None
    y0, y1, x0, x1 = seq.box
    k = 5
    shown = seq.images[START + k]
    assert (shown[y0:y1, x0:x1, 1] == START + 2 * k).all()  # inside: the fast stream
    outside = np.ones(shown.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (shown[:, :, 1][outside] == START + k).all()  # outside: normal speed
    assert len(seq.images) == 150 and seq.abnormal.sum() == SEGMENT


def test_a_clip_too_short_for_the_stretch_is_refused():
    from clipwatch.errors import DatasetError

    with pytest.raises(DatasetError, match="too few"):
        fast_sequence("c", numbered_frames(60), 4)


def test_validate_command_on_a_held_out_normal_clip(shared_data, tmp_path):
    out = tmp_path / "validation.json"
    run = subprocess.run([sys.executable, "-m", "clipwatch", "validate", str(DEFAULT_MODEL),
                          str(shared_data / "ucsd_ped2"), "--clips", "16", "--variant",
                          "stateful", "--json", str(out)], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["clips"] == ["16"]
    assert sorted(result["per_sequence"]) == sorted(
        f"16/{kind}{k}" for kind in ("fast", "fast_box") for k in (2, 3, 4))
    for key in ("fast_auc", "fast_box_auc", "fast_box_peak"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["score"] == pytest.approx(
        np.mean([result["fast_auc"], result["fast_box_auc"], result["fast_box_peak"]]))
    assert "AUC fast" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "clipwatch", "validate", str(DEFAULT_MODEL),
                          str(shared_data / "ucsd_ped2"), "--clips", "99"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert bad.returncode != 0 and "99" in bad.stderr and "Traceback" not in bad.stderr


def test_alerts_on_the_replays_count_synthetic_events_and_false_alerts():
    from clipwatch.config import AlertConfig
    from clipwatch.model.sidecar import Calibration
    from clipwatch.validation import SequenceScores, alert_counts

    calibration = Calibration(e_lo=0.0, e_hi=100.0, threshold=0.5, false_alarm_rate=0.01,
                              data="test", frames=100)
    calm, high = np.full(40, 10.0), np.full(8, 90.0)  # regularity 0.9 and 0.1
    abnormal = np.zeros(96, bool)
    abnormal[40:48] = True
    event = SequenceScores("c/fast2", np.concatenate([calm, high, calm, calm[:8]]), abnormal)
    # A normal replay with one short dip long enough to open an alert: a false alert.
    noisy = SequenceScores("c/normal", np.concatenate([calm, high[:6], calm]), np.zeros(86, bool))
    rules = AlertConfig(open_frames=5, close_frames=5, merge_seconds=0)
    counts = alert_counts([event, noisy], calibration, rules)
    assert counts["events"] == 1 and counts["events_detected"] == 1
    assert counts["alerts"] == 2 and counts["false_alerts"] == 1
    assert counts["median_delay_frames"] == 0
