"""`clipwatch replay` end to end, as a user runs it: a real process on real clips.

The bundled model and the bundled sample must work on a fresh clone; the full Ped2 test set,
the official TIF layout and a real video come from ../shared/data. Bad input must end with one
line naming the problem and a non-zero exit, never a traceback.
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from clipwatch.paths import DEFAULT_MODEL as MODEL

REPO = Path(__file__).resolve().parents[1]


def clipwatch(*args: str, timeout: float = 300, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "clipwatch", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_default_replay_scores_every_frame_of_the_bundled_sample(tmp_path):
    out, plot = tmp_path / "scores.csv", tmp_path / "scores.png"
    run = clipwatch("replay", "--out", str(out), "--plot", str(plot))
    assert run.returncode == 0, run.stderr
    rows = read_csv(out)
    assert [int(r["frame"]) for r in rows] == list(range(1, 181))  # one score per frame
    errors = np.array([float(r["error"]) for r in rows])
    assert np.isfinite(errors).all() and (errors > 0).all()
    assert {r["abnormal_gt"] for r in rows[:60]} == {"0"}  # UCSD Ped2 Test001: 61-180 abnormal
    assert {r["abnormal_gt"] for r in rows[60:]} == {"1"}
    paper = np.array([float(r["regularity_paper"]) for r in rows])
    assert paper.max() == pytest.approx(1.0, abs=1e-5)
    assert all(r["regularity_causal"] for r in rows)  # the bundled model is calibrated
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 300
    assert "frame-level AUC over 180 frames (120 abnormal): paper" in run.stdout
    assert "causal" in run.stdout
    assert len([line for line in run.stdout.splitlines() if line.strip().startswith("01 ")]) \
        == 180  # the per-frame table of a single clip


def test_replay_of_the_whole_ped2_test_set_pools_every_frame(shared_data, tmp_path):
    out = tmp_path / "ped2.csv"
    run = clipwatch("replay", str(shared_data / "ucsd_ped2"), "--stride", "10", "--out", str(out))
    assert run.returncode == 0, run.stderr
    rows = read_csv(out)
    assert len(rows) == 1020
    assert sorted({r["clip"] for r in rows}) == ["01", "02", "03", "04", "05", "06"]
    abnormal = sum(int(r["abnormal_gt"]) for r in rows)
    assert abnormal == 120 + 86 + 146 + 150 + 129 + 159  # the official Ped2 intervals, 1-6
    assert f"frame-level AUC over 1020 frames ({abnormal} abnormal)" in run.stdout


def test_replay_reads_the_official_tif_layout(shared_data, tmp_path):
    out = tmp_path / "tif.csv"
    root = shared_data / "ucsd_ped2_tif" / "UCSDped2"
    run = clipwatch("replay", str(root), "--stride", "10", "--out", str(out))
    assert run.returncode == 0, run.stderr
    rows = read_csv(out)
    assert len(rows) == 180 and rows[0]["clip"] == "Test001"
    assert sum(int(r["abnormal_gt"]) for r in rows) == 120


def test_replay_of_a_video_file_has_scores_but_no_ground_truth(shared_data, tmp_path):
    out = tmp_path / "video.csv"
    run = clipwatch("replay", str(shared_data / "video" / "vtest.avi"), "--stride", "10",
                    "--summary", "--out", str(out))
    assert run.returncode == 0, run.stderr
    rows = read_csv(out)
    assert len(rows) == 795
    assert float(rows[-1]["timestamp_s"]) == pytest.approx(794 / 10, abs=0.01)  # 10 fps media time
    assert "no ground truth for this source" in run.stdout


@pytest.fixture
def bad_inputs(tmp_path, sample_clip):
    empty = tmp_path / "empty"
    empty.mkdir()
    few = tmp_path / "few"
    few.mkdir()
    for name in sorted(os.listdir(sample_clip))[:5]:
        shutil.copy(sample_clip / name, few / name)
    text_video = tmp_path / "notes.avi"
    text_video.write_text("this is a text file, not a video\n")
    bare_model = tmp_path / "bare.onnx"
    shutil.copy(MODEL, bare_model)
    fake_model = tmp_path / "fake.onnx"
    fake_model.write_bytes(b"\x00not a model" * 100)
    shutil.copy(MODEL.with_suffix(".json"), fake_model.with_suffix(".json"))
    return {"empty": empty, "few": few, "text_video": text_video, "fake_model": fake_model,
            "bare_model": bare_model,
            "missing": tmp_path / "nowhere", "sample": sample_clip}


@pytest.mark.parametrize("args, message", [
    (["replay", "{missing}"], "nowhere does not exist"),
    (["replay", "{empty}"], "no frames in"),
    (["replay", "{text_video}"], "notes.avi is not a readable video"),
    (["replay", "{few}"], "has 5 frames; scoring needs at least 10"),
    (["replay", "{sample}", "--model", "{fake_model}"], "fake.onnx is not a loadable ONNX model"),
    (["replay", "{sample}", "--model", "{missing}"], "nowhere does not exist"),
    (["replay", "{sample}", "--model", "{bare_model}"], "has no sidecar bare.json"),
    (["replay", "{sample}", "--model", "{sample}"], "is a folder, not an ONNX model file"),
    (["replay", "{sample}", "--stride", "11"], "stride must be between 1 and 10"),
    (["replay", "{sample}", "--stride", "0"], "--stride: must be at least 1"),
    (["replay", "{sample}", "--stride", "abc"], "'abc' is not a whole number"),
    (["replay", "ftp://camera.local/stream"], "unsupported scheme 'ftp'"),
])
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(bad_inputs, args, message):
    run = clipwatch(*[a.format(**bad_inputs) for a in args], timeout=120)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    # Exactly one error line naming the problem; anything else on stderr is clipwatch's own
    # one-line log (e.g. "running on the CPU"), never a traceback or a library's noise.
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert all(line.startswith("clipwatch") for line in lines), run.stderr


def test_heatmaps_are_written_over_every_scored_frame(tmp_path, sample_clip):
    folder = tmp_path / "heat"
    run = clipwatch("replay", str(sample_clip), "--stride", "10", "--summary",
                    "--heatmaps", str(folder))
    assert run.returncode == 0, run.stderr
    files = sorted((folder / "01").iterdir())
    # Stride 10 runs 18 clips, and each frame gets its own map from the clip that scored it:
    # one overlay per frame, at the camera's size.
    assert [f.name for f in files] == [f"{n:06d}.jpg" for n in range(1, 181)]
    overlay = cv2.imread(str(files[-1]))
    assert overlay.shape == (240, 360, 3)
    original = cv2.imread(str(sample_clip / "179.jpg"))
    # The overlay is the frame with colour on it: close to the original, but not the same.
    difference = np.abs(overlay.astype(int) - original.astype(int)).mean()
    assert 0.1 < difference < 60
