"""Learn a new camera: record its normal footage, fine-tune a model, calibrate, judge, write it.

`clipwatch learn SOURCE --minutes N --out weights/NAME.onnx [--from MODEL]` and (later) the
service's learning jobs run these steps, in a work folder that makes each one resumable:

1. record: N minutes of SOURCE (a video file, a folder of frames, a live URL) into a
   recording (stream/recording.py), chunked;
2. split: chunks spread over the recording are held out, alternately to calibrate and to
   judge; the rest trains;
3. train: fine-tune MODEL (default: the shipped one) with the detection-quality recipe
   (Adam 1e-4, bf16, one clip in four a pseudo-anomaly at frame strides 2-5 trained towards
   its stride-1 clip), for a time budget or a number of steps, checkpointed and resumable;
4. export: ONNX + sidecar + the fast parts the service runs (staggered, as the shipped model);
5. calibrate on the calibration chunks at the false-alarm rate asked for (1% per frame);
6. judge on the judge chunks, which neither training nor calibration saw: false alarms per
   frame and alerts per hour under the service's alert rules, for the new model and for
   MODEL as it stands (its own calibration: what the camera runs now), and the validation
   measure (synthetic anomalies) on the held-out chunks;
7. the sidecar records the scene, the footage, where it came from and these figures.

Training is the only step that needs torch (the `train` extra).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clipwatch.config import AlertConfig
from clipwatch.errors import ClipwatchError
from clipwatch.evaluate import ScoredClip, calibrate_scored, normal_targets, score_clips
from clipwatch.model.reconstructors import LoadedModel, load_model
from clipwatch.model.sidecar import read_sidecar, write_sidecar
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.quality import alert_spans
from clipwatch.stream.preprocess import InputSpec
from clipwatch.stream.recording import (
    FootageSplit,
    FootageWriter,
    RecordingError,
    read_info,
    split_chunks,
)
from clipwatch.stream.sources import open_source

log = logging.getLogger(__name__)

# The detection-quality recipe (weights/README.md): what the shipped model was fine-tuned with.
RECIPE = {"batch_size": 4, "lr": 1e-4, "frame_strides": (1,), "pseudo_anomalies": 1,
          "pseudo_strides": (2, 3, 4, 5)}


@dataclass
class LearnSettings:
    source: str
    out: Path
    minutes: float
    from_model: Path = DEFAULT_MODEL
    scene: str = ""  # what the camera watches, for the sidecar (default: the source's name)
    train_minutes: float = 20.0  # the training budget (the goal: learn to active <= 30 min)
    steps: int = 100_000  # at most this many steps within the budget
    far: float = 0.01  # calibrated false alarms per frame
    # 12 s: a held-out chunk at 10 frames/s then has the 111 frames the validation measure's
    # 4x stretch needs (validation.py: 30 normal frames, then 20 at 4x).
    chunk_seconds: float = 12.0
    fps: float | None = None  # a folder's frame rate (default 10), or a file's override
    max_bytes: int | None = 2 * 1024**3  # the recording's size bound
    work: Path | None = None  # where the steps keep their state (default: <out>.learn/)
    seed: int = 0

    @property
    def work_dir(self) -> Path:
        return self.work or self.out.with_name(self.out.stem + ".learn")


@dataclass
class Judgement:
    """One model on the judge chunks."""

    model: str
    frames: int  # frames given a verdict
    seconds: float  # footage judged
    false_alarm_rate: float  # share of verdict frames below the threshold
    mean_error: float  # mean e(t) over those frames: how well it reconstructs this scene
    alerts: int
    alerts_per_hour: float
    threshold: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LearnReport:
    out: Path
    footage: dict
    split: dict
    steps: int
    train_seconds: float
    seconds: float  # learn's own wall time, all steps of this invocation
    calibration: dict
    new: Judgement
    before: Judgement | None
    validation: dict | None = None
    losses: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


# -- 1. record -----------------------------------------------------------------------------


def record(settings: LearnSettings, spec: InputSpec,
           progress: Callable[[int, int], None] | None = None) -> Path:
    """N minutes of the source into <work>/footage (kept if already complete)."""
    folder = settings.work_dir / "footage"
    if (folder / "recording.json").exists() and (folder / ".complete").exists():
        log.info("footage already recorded in %s", folder)
        return folder
    if folder.exists():  # an interrupted recording starts again (a file or a live source)
        import shutil

        shutil.rmtree(folder)
    with open_source(settings.source, settings.fps) as source:
        fps = source.fps or 10.0
        wanted = max(1, round(settings.minutes * 60 * fps))
        chunk = max(20, round(settings.chunk_seconds * fps))
        writer = FootageWriter.create(folder, settings.source, fps, spec, chunk,
                                      settings.max_bytes)
        for kept, frame in enumerate(source, start=1):
            if not writer.add(frame.image):
                log.warning("the recording reached its size bound after %d frames", kept - 1)
                break
            if progress is not None:
                progress(kept, wanted)
            if kept >= wanted:
                break
    info = writer.close()
    (folder / ".complete").write_text("")
    log.info("recorded %d frames at %.1f frames/s in %d chunks (%.1f MB)", info.frames, fps,
             len(info.chunks), info.bytes / 1e6)
    return folder


# -- 3. train ------------------------------------------------------------------------------


def fine_tune(settings: LearnSettings, footage: Path, split: FootageSplit,
              on_step: Callable[[int, float, float], None] | None = None) -> tuple[Path, dict]:
    """The recipe from `from_model`, resumable from <work>/train/last.pt."""
    from clipwatch.model.train import TrainConfig, train

    config = TrainConfig(data=str(footage), steps=settings.steps, init=str(settings.from_model),
                         holdout=tuple(split.calibrate + split.judge), seed=settings.seed,
                         checkpoint_every_s=60.0, **RECIPE)
    out = settings.work_dir / "train"
    result = train(config, out, resume=True, max_minutes=settings.train_minutes,
                   on_step=on_step)
    losses = result.losses
    summary = {"first": float(np.mean(losses[:20])) if losses else None,
               "last": float(np.mean(losses[-20:])) if losses else None, "steps": result.step}
    return result.checkpoint, summary


# -- 4. export -----------------------------------------------------------------------------


def export(checkpoint: Path, out: Path, name: str) -> None:
    """ONNX + sidecar, then the parts the service's staggered variant runs."""
    from clipwatch.model.export import export_onnx
    from clipwatch.model.fast_export import export_parts, write_manifest

    report = export_onnx(checkpoint, out, name=name)
    spec = read_sidecar(report.onnx_path).input_spec
    shape = (2, spec.clip_length, 1, spec.size, spec.size)
    clips = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    write_manifest(report.onnx_path, export_parts(report.onnx_path, clips), [],
                   auto="staggered")


# -- 5, 6. calibrate and judge -------------------------------------------------------------


def judge(model: LoadedModel, scored: list[ScoredClip], fps: float,
          rules: AlertConfig | None = None) -> Judgement:
    """False alarms of a calibrated model on normal chunks it never saw."""
    calibration = model.sidecar.calibration
    if calibration is None:
        raise ClipwatchError(f"{model.detector.path.name} has no calibration to judge")
    series = []
    for clip in scored:
        live = clip.live.causal(calibration).copy()
        live[:clip.warmup] = np.nan  # the live score's warm-up: no verdict
        series.append((live, clip.live.errors))
    return false_alarms(model.detector.path.name, series, calibration.threshold, fps, rules)


def false_alarms(model: str, series: list[tuple[np.ndarray, np.ndarray]], threshold: float,
                 fps: float, rules: AlertConfig | None = None) -> Judgement:
    """Footage taken as normal, as (live regularity, e(t)) per stretch (NaN: no verdict):
    every frame below the threshold is a false alarm, and so is every alert the service's
    rules raise."""
    frames, below, alerts, errors = 0, 0, 0, []
    for live, error in series:
        judged = ~np.isnan(live)
        frames += int(judged.sum())
        below += int((live[judged] < threshold).sum())
        errors.append(error[judged])
        alerts += len(alert_spans(live, threshold, rules))
    seconds = frames / fps
    return Judgement(model, frames, seconds, below / max(1, frames),
                     float(np.concatenate(errors).mean()) if frames else float("nan"), alerts,
                     alerts / (seconds / 3600) if seconds else float("nan"), threshold)


def calibrate_and_judge(settings: LearnSettings, footage: Path, split: FootageSplit,
                        fps: float, source: str
                        ) -> tuple[LoadedModel, dict, Judgement, Judgement | None]:
    """Calibrate the new model (its sidecar, on disk and in the loaded model), then judge it
    and the model before; returns the calibrated model for the validation measure."""
    model = load_model(settings.out)
    scoring = model.sidecar.scoring
    calib = score_clips(normal_targets(footage, split.calibrate), model, scoring, None,
                        "calibration chunks")
    calibration = calibrate_scored(calib, scoring, settings.far,
                                   f"{source}: recorded chunks "
                                   f"{', '.join(split.calibrate)}")
    sidecar = model.detector.sidecar
    sidecar.calibration = calibration  # the loaded model judges with it: no second load
    write_sidecar(settings.out, sidecar)
    judge_targets = normal_targets(footage, split.judge)
    new = judge(model, score_clips(judge_targets, model, scoring, None, "judge chunks"), fps)
    before = None
    old = load_model(settings.from_model)
    if old.sidecar.calibration is not None:
        before = judge(old, score_clips(judge_targets, old, old.sidecar.scoring, None,
                                        "judge chunks, the model before"), fps)
    return model, calibration.to_dict(), new, before


# -- all steps -----------------------------------------------------------------------------


def learn(settings: LearnSettings,
          on_step: Callable[[int, float, float], None] | None = None,
          on_record: Callable[[int, int], None] | None = None) -> LearnReport:
    """Every step; a step already done in the work folder is not done again."""
    started = time.monotonic()
    if settings.out.suffix != ".onnx":
        raise ClipwatchError(f"--out must name an .onnx file, not {settings.out}")
    spec = read_sidecar(settings.from_model).input_spec
    footage = record(settings, spec, on_record)
    info = read_info(footage)
    split = split_chunks(info.chunks)
    checkpoint, losses = fine_tune(settings, footage, split, on_step)
    name = settings.out.stem
    export(checkpoint, settings.out, name)
    model, calibration, new, before = calibrate_and_judge(settings, footage, split, info.fps,
                                                          info.source)
    validation = None
    try:
        from clipwatch.validation import validate

        result = validate(model, footage, split.calibrate + split.judge)
        validation = result.to_dict()
    except (ClipwatchError, ValueError) as exc:  # too little footage for synthetic anomalies
        log.warning("validation skipped: %s", exc)
    from clipwatch.model.checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint)
    report = LearnReport(
        out=settings.out, footage={"source": info.source, "frames": info.frames,
                                   "fps": info.fps, "chunks": len(info.chunks),
                                   "bytes": info.bytes, "minutes": info.frames / info.fps / 60},
        split=asdict(split), steps=int(payload["step"]),
        train_seconds=float(payload["train_seconds"]), seconds=time.monotonic() - started,
        calibration=calibration, new=new, before=before, validation=validation, losses=losses)
    _write_provenance(settings, report)
    return report


def _write_provenance(settings: LearnSettings, report: LearnReport) -> None:
    """The sidecar says what the model learned and how well it did."""
    sidecar = read_sidecar(settings.out)
    sidecar.provenance.update({
        "scene": settings.scene or Path(report.footage["source"].rstrip("/")).name,
        "footage": report.footage, "learned_from": str(settings.from_model),
        "recipe": {**RECIPE, "frame_strides": list(RECIPE["frame_strides"]),
                   "pseudo_strides": list(RECIPE["pseudo_strides"])},
        "held_out_clips": report.split["calibrate"] + report.split["judge"],
        "split": report.split})
    sidecar.metrics["learn"] = {
        "judged_on": report.split["judge"], "new": report.new.to_dict(),
        "before": report.before.to_dict() if report.before else None,
        "validation_score": report.validation["score"] if report.validation else None,
        "steps": report.steps, "train_seconds": round(report.train_seconds, 1)}
    write_sidecar(settings.out, sidecar)
    (settings.work_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2,
                                                              default=str) + "\n")


__all__ = ["LearnReport", "LearnSettings", "RecordingError", "learn"]
