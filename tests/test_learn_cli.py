"""`clipwatch learn` as a user runs it: a street the shipped (Ped2) model never saw, learned
from its first 36 s, a short fine-tune that lowers the error on held-out street chunks, a
calibrated model with its sidecar and fast parts; and bad input refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clipwatch.model.reconstructors import load_model
from clipwatch.model.sidecar import read_sidecar
from clipwatch.paths import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]


def clipwatch(*args: str):
    return subprocess.run([sys.executable, "-m", "clipwatch", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


@pytest.fixture(scope="module")
def learned(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("learn") / "street.onnx"
    video = shared_data / "video" / "vtest.avi"  # 10 frames/s
    run = clipwatch("learn", str(video), "--minutes", "0.6", "--out", str(out),
                    "--chunk-seconds", "3", "--steps", "16", "--train-minutes", "5",
                    "--scene", "street")
    assert run.returncode == 0, run.stderr[-2000:]
    return out, run.stdout


def test_learn_writes_a_calibrated_model_with_its_footage_and_figures(learned):
    out, stdout = learned
    assert "recorded 360 frames" in stdout and "train 8, calibrate 2, judge 2" in stdout
    model = load_model(out)  # the sidecar matches the graph; the fast parts load
    assert model.variant == "staggered"
    sidecar = read_sidecar(out)
    assert sidecar.calibration.false_alarm_rate == 0.01 and "chunk_0002" in \
        sidecar.calibration.data
    # Calibrated with the scoring of the model it came from (the shipped frame+smooth9).
    assert sidecar.calibration.scoring == read_sidecar(DEFAULT_MODEL).scoring
    assert sidecar.calibration.scoring.smooth == 9
    provenance = sidecar.provenance
    assert provenance["scene"] == "street" and provenance["footage"]["frames"] == 360
    assert provenance["learned_from"].endswith("ucsd_ped2.onnx")
    assert provenance["held_out_clips"] == ["chunk_0002", "chunk_0008", "chunk_0005",
                                            "chunk_0011"]
    learn = sidecar.metrics["learn"]
    assert learn["steps"] == 16 and learn["judged_on"] == ["chunk_0005", "chunk_0011"]
    report = json.loads((out.with_name("street.learn") / "report.json").read_text())
    assert report["new"]["frames"] == 2 * (30 - 9)  # two judge chunks after the warm-up


def test_a_short_fine_tune_lowers_the_error_on_held_out_street_footage(learned):
    out, _ = learned
    learn = read_sidecar(out).metrics["learn"]
    # The chunks it is judged on were in neither training nor calibration.
    assert learn["new"]["mean_error"] < 0.95 * learn["before"]["mean_error"], learn


def test_learn_again_resumes_from_its_work_folder(learned):
    out, _ = learned
    work = out.with_name("street.learn")
    checkpoint = work / "train" / "last.pt"
    before = checkpoint.read_bytes()
    run = clipwatch("learn", "unused-source", "--minutes", "0.6", "--out", str(out),
                    "--chunk-seconds", "3", "--steps", "16", "--train-minutes", "5")
    # The footage is recorded already (the source is not opened again) and training is done.
    assert run.returncode == 0, run.stderr[-2000:]
    assert checkpoint.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--minutes", "0.05"], "learning needs at least 4"),  # 30 frames: one chunk
    # Four 20-frame chunks: the calibration chunk gives 11 frames a verdict.
    (["--minutes", "0.14", "--chunk-seconds", "2"], "calibrating needs at least 20"),
    (["--minutes", "0.5", "--out", "x.pt"], "must name an .onnx file"),
])
def test_bad_input_is_refused_in_one_line(shared_data, tmp_path, args, message):
    video = shared_data / "video" / "vtest.avi"
    options = {"--out": str(tmp_path / "m.onnx"), "--chunk-seconds": "3"}
    for key, value in zip(args[::2], args[1::2], strict=True):
        options[key] = value
    flat = [item for pair in options.items() for item in pair]
    run = clipwatch("learn", str(video), *flat)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in run.stderr


def test_an_unknown_source_is_refused_in_one_line(tmp_path):
    run = clipwatch("learn", str(tmp_path / "nothere.avi"), "--minutes", "1", "--out",
                    str(tmp_path / "m.onnx"))
    assert run.returncode != 0 and "does not exist" in run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr


def test_learn_takes_a_folder_of_clips_as_it_is_and_trains_from_scratch(shared_data, tmp_path):
    """Footage already cut into normal clips (Ped2 training clips 01-04) is learned from as
    it is, each clip a chunk: two train, one calibrates, one judges; --scratch starts from
    random weights and the sidecar says so."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("01", "02", "03", "04"):
        (clips / name).symlink_to(shared_data / "ucsd_ped2" / "training" / "frames" / name)
    out = tmp_path / "walkway.onnx"
    run = clipwatch("learn", str(clips), "--out", str(out), "--scratch", "--steps", "3",
                    "--threads", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "train 2, calibrate 1, judge 1" in run.stdout
    assert "trained 3 steps from random weights" in run.stdout
    sidecar = read_sidecar(out)
    assert sidecar.provenance["learned_from"] == "random weights"
    assert sidecar.provenance["recipe"]["lr"] == 1e-3
    assert sidecar.provenance["split"] == {"train": ["01", "02"], "calibrate": ["03"],
                                           "judge": ["04"]}
    progress = json.loads((tmp_path / "walkway.learn" / "progress.json").read_text())
    assert progress["stage"] == "done" and progress["step"] == 3
    # The recorded footage is the clips themselves: nothing was copied.
    assert not (tmp_path / "walkway.learn" / "footage").exists()
