"""Learn a new camera: record its normal footage, fine-tune a model, calibrate, judge, write it.

`clipwatch learn SOURCE --minutes N --out weights/NAME.onnx [--from MODEL]` and the
service's learning jobs (server/learning.py) run these steps, in a work folder that makes
each one resumable, and say where they stand in its progress.json (learn_progress.py):

1. record: N minutes of SOURCE (a video file, a folder of frames, a live URL) into a
   recording (stream/recording.py), chunked; a recording already made (the service's) or a
   dataset of normal clips (a UCSD root, a folder of clip folders) is taken as it is, each
   clip a chunk;
2. split: chunks spread over the recording are held out, alternately to calibrate and to
   judge; the rest trains;
3. train: fine-tune MODEL (default: the shipped one) with the detection-quality recipe
   (Adam 1e-4, bf16, one clip in four a pseudo-anomaly at frame strides 2-5 trained towards
   its stride-1 clip), or train from random weights (`scratch`: the reference's rate, 1e-3
   decaying to 1e-4, with the same pseudo-anomalies), for a time budget (over all
   invocations) or a number of steps, checkpointed, resumable, stoppable;
4. export: ONNX + sidecar + the fast parts the service runs (staggered, as the shipped model);
5. choose the scoring on the validation measure (synthetic anomalies in the held-out chunks,
   validation.py): MODEL's (the shipped model's frame+smooth9) or the plain per-frame sum;
6. calibrate on the calibration chunks at the false-alarm rate asked for (1% per frame);
7. judge on the judge chunks, which neither training nor calibration saw: false alarms per
   frame and alerts per hour under the service's alert rules, for the new model and for
   MODEL as it stands (its own calibration: what the camera runs now);
8. the sidecar records the scene, the footage, where it came from and these figures.

Training is the only step that needs torch (the `train` extra).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clipwatch.config import AlertConfig
from clipwatch.errors import ClipwatchError
from clipwatch.evaluate import ScoredClip, calibrate_scored, normal_targets, score_clips
from clipwatch.learn_progress import AFTER_TRAIN_S_PER_FRAME, EXPORT_S, ProgressFile
from clipwatch.model.calibration import MIN_CALIBRATION_FRAMES
from clipwatch.model.reconstructors import LoadedModel, load_model
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import read_sidecar, write_sidecar
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.quality import alert_spans
from clipwatch.stream.footage import normal_clip_paths
from clipwatch.stream.preprocess import InputSpec
from clipwatch.stream.recording import (
    META,
    FootageSplit,
    FootageWriter,
    RecordingError,
    RecordingInfo,
    read_info,
    split_chunks,
)
from clipwatch.stream.sources import IMAGE_EXTENSIONS, open_source
from clipwatch.stream.ucsd import find_ucsd

log = logging.getLogger(__name__)

# The detection-quality recipe (weights/README.md): what the shipped model was fine-tuned with.
RECIPE = {"batch_size": 4, "lr": 1e-4, "frame_strides": (1,), "pseudo_anomalies": 1,
          "pseudo_strides": (2, 3, 4, 5)}
# From random weights: the reference's rate (weights/README.md, stage 1), decaying over the
# planned steps, with the pseudo-anomalies from the start.
SCRATCH_RECIPE = {**RECIPE, "lr": 1e-3, "lr_schedule": "cosine"}
SCRATCH_STEPS = 1500  # what about 27 minutes train on 2 CPU cores (the rate decays over them)
FINE_TUNE_STEPS = 100_000  # in effect: the time budget ends a fine-tune


@dataclass
class LearnSettings:
    source: str
    out: Path
    minutes: float | None = None  # footage to record (None: all of a file or a folder)
    # The model to fine-tune, and the one judged as "before" (what the camera runs now).
    from_model: Path = DEFAULT_MODEL
    scratch: bool = False  # train from random weights instead of fine-tuning from_model
    scene: str = ""  # what the camera watches, for the sidecar (default: the source's name)
    train_minutes: float = 20.0  # the training budget (the goal: learn to active <= 30 min)
    steps: int | None = None  # at most this many steps within the budget (None: the recipe's)
    far: float = 0.01  # calibrated false alarms per frame
    # 12 s: a held-out chunk at 10 frames/s then has the 111 frames the validation measure's
    # 4x stretch needs (validation.py: 30 normal frames, then 20 at 4x).
    chunk_seconds: float = 12.0
    fps: float | None = None  # a folder's frame rate (default 10), or a file's override
    max_bytes: int | None = 2 * 1024**3  # the recording's size bound
    work: Path | None = None  # where the steps keep their state (default: <out>.learn/)
    seed: int = 0
    threads: int = 0  # torch's threads while training (0: its default, one per core)
    checkpoint_every_s: float = 60.0

    @property
    def work_dir(self) -> Path:
        return self.work or self.out.with_name(self.out.stem + ".learn")

    @property
    def recipe(self) -> dict:
        return SCRATCH_RECIPE if self.scratch else RECIPE

    @property
    def planned_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return SCRATCH_STEPS if self.scratch else FINE_TUNE_STEPS


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
    scoring: str = ""  # the scoring chosen on the validation measure
    scoring_scores: dict = field(default_factory=dict)  # each candidate's validation score

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


# -- 1. record -----------------------------------------------------------------------------


def footage_of(settings: LearnSettings, spec: InputSpec,
               progress: Callable[[int, int], None] | None = None
               ) -> tuple[Path, RecordingInfo]:
    """The footage to learn from: a recording or a dataset of normal clips as it is (each
    clip a chunk), else the source recorded into <work>/footage."""
    source = Path(settings.source)
    if (source / META).exists():
        return source, read_info(source)
    if source.is_dir() and (find_ucsd(source) is not None
                            or any(p.is_dir() for p in source.iterdir())):
        clips = normal_clip_paths(source)
        frames = sum(_frame_count(path) for _, path in clips)
        return source, RecordingInfo(
            source=str(source), fps=settings.fps or 10.0, chunk_frames=0, size=spec.size,
            chunks=[name for name, _ in clips], frames=frames,
            bytes=sum(f.stat().st_size for _, p in clips for f in
                      (p.iterdir() if p.is_dir() else [p]) if f.is_file()))
    folder = record(settings, spec, progress)
    return folder, read_info(folder)


def check_held_out(footage: Path, split: FootageSplit, clip_length: int) -> None:
    """Refuse footage whose calibration chunks are too short to calibrate on (a chunk's first
    clip_length - 1 frames get no verdict), before any training."""
    paths = dict(normal_clip_paths(footage))
    judged = sum(max(0, _frame_count(paths[c]) - (clip_length - 1)) for c in split.calibrate)
    if judged < MIN_CALIBRATION_FRAMES:
        raise RecordingError(
            f"the calibration chunks ({', '.join(split.calibrate)}) give {judged} frames a "
            f"verdict; calibrating needs at least {MIN_CALIBRATION_FRAMES}: record longer or "
            "in longer chunks")


def _frame_count(path: Path) -> int:
    if path.is_dir():
        return sum(1 for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def record(settings: LearnSettings, spec: InputSpec,
           progress: Callable[[int, int], None] | None = None) -> Path:
    """N minutes of the source (all of a file or a folder) into <work>/footage (kept if
    already complete)."""
    folder = settings.work_dir / "footage"
    if (folder / "recording.json").exists() and (folder / ".complete").exists():
        log.info("footage already recorded in %s", folder)
        return folder
    if folder.exists():  # an interrupted recording starts again (a file or a live source)
        import shutil

        shutil.rmtree(folder)
    with open_source(settings.source, settings.fps) as source:
        fps = source.fps or 10.0
        if settings.minutes is None and source.is_live:
            raise ClipwatchError(f"{settings.source} is live: say how long to record "
                                 "(--minutes)")
        wanted = round(settings.minutes * 60 * fps) if settings.minutes is not None else 0
        wanted = max(1, wanted) if settings.minutes is not None else None
        chunk = max(20, round(settings.chunk_seconds * fps))
        writer = FootageWriter.create(folder, settings.source, fps, spec, chunk,
                                      settings.max_bytes)
        for kept, frame in enumerate(source, start=1):
            if not writer.add(frame.image):
                log.warning("the recording reached its size bound after %d frames", kept - 1)
                break
            if progress is not None:
                progress(kept, wanted or 0)
            if wanted is not None and kept >= wanted:
                break
    info = writer.close()
    (folder / ".complete").write_text("")
    log.info("recorded %d frames at %.1f frames/s in %d chunks (%.1f MB)", info.frames, fps,
             len(info.chunks), info.bytes / 1e6)
    return folder


# -- 3. train ------------------------------------------------------------------------------


def fine_tune(settings: LearnSettings, footage: Path, split: FootageSplit,
              resumed: dict | None = None,
              on_step: Callable[[int, float, float], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> tuple[Path, dict]:
    """The recipe from `from_model` (or from random weights), resumable from
    <work>/train/last.pt (`resumed`: that checkpoint as it stood, None before the first
    step); the time budget counts the training seconds of every invocation."""
    from clipwatch.model.train import TrainConfig, train

    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    config = TrainConfig(data=str(footage), steps=settings.planned_steps,
                         init=None if settings.scratch else str(settings.from_model),
                         holdout=tuple(split.calibrate + split.judge), seed=settings.seed,
                         checkpoint_every_s=settings.checkpoint_every_s, **settings.recipe)
    out = settings.work_dir / "train"
    last = out / "last.pt"
    spent = float(resumed["train_seconds"]) if resumed else 0.0
    left_min = settings.train_minutes - spent / 60
    if resumed is not None and left_min <= 0:
        log.info("the training budget is spent (%.1f min); keeping %s", spent / 60, last)
        losses = resumed["losses"]
        step = len(losses)
    else:
        result = train(config, out, resume=True, max_minutes=max(left_min, 0.0),
                       on_step=on_step, should_stop=should_stop)
        losses, step, last = result.losses, result.step, result.checkpoint
    summary = {"first": float(np.mean(losses[:20])) if losses else None,
               "last": float(np.mean(losses[-20:])) if losses else None, "steps": step}
    return last, summary


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


def choose_scoring(model: LoadedModel, settings: LearnSettings, footage: Path,
                   held: list[str]) -> tuple[ScoringOptions, dict | None, dict[str, float]]:
    """The scoring the new model runs with: that of the model it came from (the shipped
    model's frame+smooth9 was chosen on the validation measure for the reference) or the
    plain per-frame sum, whichever the validation measure (held-out chunks with synthetic
    anomalies: normal footage only) scores higher; a tie keeps the first. With too little
    footage for the measure, the first. Returns it, its validation and every candidate's
    score."""
    from clipwatch.validation import validate

    candidates = [read_sidecar(settings.from_model).scoring]
    if ScoringOptions() not in candidates:
        candidates.append(ScoringOptions())
    results = []
    for scoring in candidates:
        try:
            results.append((scoring, validate(model, footage, held, scoring=scoring).to_dict()))
        except (ClipwatchError, ValueError) as exc:  # too little footage for the measure
            log.warning("validation skipped: %s", exc)
            return candidates[0], None, {}
    best = max(results, key=lambda r: r[1]["score"])
    return best[0], best[1], {s.name: v["score"] for s, v in results}


def calibrate_and_judge(settings: LearnSettings, model: LoadedModel, scoring: ScoringOptions,
                        footage: Path, split: FootageSplit, fps: float, source: str
                        ) -> tuple[dict, Judgement, Judgement | None]:
    """Calibrate the new model with `scoring` (its sidecar, on disk and in the loaded
    model), then judge it and the model before."""
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
    return calibration.to_dict(), new, before


# -- all steps -----------------------------------------------------------------------------


class LearnStopped(ClipwatchError):
    """Asked to stop: the training is checkpointed and a later learn resumes it."""


def learn(settings: LearnSettings,
          on_step: Callable[[int, float, float], None] | None = None,
          on_record: Callable[[int, int], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> LearnReport:
    """Every step; a step already done in the work folder is not done again. Where it stands
    is in <work>/progress.json."""
    started = time.monotonic()
    if settings.out.suffix != ".onnx":
        raise ClipwatchError(f"--out must name an .onnx file, not {settings.out}")
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with _work_lock(settings.work_dir):
        progress = ProgressFile(settings.work_dir)
        try:
            return _learn(settings, progress, started, on_step, on_record, should_stop)
        except LearnStopped:
            progress.update(stopped=True)
            raise
        except Exception as exc:
            progress.stage("failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
            raise


@contextmanager
def _work_lock(work: Path) -> Iterator[None]:
    """One learn at a time in a work folder (a job relaunched after a restart while the old
    process still ran would otherwise train twice into one checkpoint)."""
    import fcntl

    with open(work / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClipwatchError(f"another learn is running in {work}") from None
        yield


def _learn(settings: LearnSettings, progress: ProgressFile, started: float,
           on_step: Callable[[int, float, float], None] | None,
           on_record: Callable[[int, int], None] | None,
           should_stop: Callable[[], bool] | None) -> LearnReport:
    spec = read_sidecar(settings.from_model).input_spec

    def recorded(kept: int, wanted: int) -> None:
        progress.update(force=False, stage="record", frames=kept, frames_wanted=wanted)
        if on_record is not None:
            on_record(kept, wanted)

    progress.stage("record", error=None, stopped=False)
    footage, info = footage_of(settings, spec, recorded)
    split = split_chunks(info.chunks)
    check_held_out(footage, split, spec.clip_length)
    held = round(info.frames * (len(split.calibrate) + len(split.judge)) / len(info.chunks))
    from clipwatch.model.checkpoint import load_checkpoint

    last = settings.work_dir / "train" / "last.pt"
    resumed = load_checkpoint(last) if last.exists() else None
    base = float(resumed["train_seconds"]) if resumed else 0.0  # earlier invocations'
    batch = settings.recipe["batch_size"]
    budget_s = settings.train_minutes * 60
    train_s = [0.0]

    def stepped(step: int, loss: float, clips_per_s: float) -> None:
        train_s[0] += batch / clips_per_s if clips_per_s > 0 else 0.0
        progress.train_step(step, loss, clips_per_s, steps=settings.planned_steps,
                            batch_size=batch, budget_s=budget_s,
                            train_s=base + train_s[0],
                            held_frames=held)
        if on_step is not None:
            on_step(step, loss, clips_per_s)

    progress.stage("train", train_base_s=base, footage_frames=info.frames,
                   footage_chunks=len(info.chunks))
    checkpoint, losses = fine_tune(settings, footage, split, resumed, stepped, should_stop)
    if should_stop is not None and should_stop():
        raise LearnStopped("stopped while training; the checkpoint resumes it")
    name = settings.out.stem
    after = AFTER_TRAIN_S_PER_FRAME * held  # the ETA of the stages after training
    progress.stage("export", eta_s=round(EXPORT_S + after, 1))
    export(checkpoint, settings.out, name)
    progress.stage("validate", eta_s=round(after, 1))
    model = load_model(settings.out)
    scoring, validation, candidates = choose_scoring(model, settings, footage,
                                                     split.calibrate + split.judge)
    progress.stage("calibrate", eta_s=round(0.5 * after, 1), scoring=scoring.name)
    calibration, new, before = calibrate_and_judge(settings, model, scoring, footage, split,
                                                   info.fps, info.source)
    payload = load_checkpoint(checkpoint)  # as training left it
    report = LearnReport(
        out=settings.out, footage={"source": info.source, "frames": info.frames,
                                   "fps": info.fps, "chunks": len(info.chunks),
                                   "bytes": info.bytes, "minutes": info.frames / info.fps / 60},
        split=asdict(split), steps=int(payload["step"]),
        train_seconds=float(payload["train_seconds"]), seconds=time.monotonic() - started,
        calibration=calibration, new=new, before=before, validation=validation, losses=losses,
        scoring=scoring.name, scoring_scores=candidates)
    _write_provenance(settings, report)
    progress.stage("done", eta_s=0.0, model=str(settings.out),
                   false_alarm_rate=new.false_alarm_rate,
                   alerts_per_hour=new.alerts_per_hour)
    return report


def _write_provenance(settings: LearnSettings, report: LearnReport) -> None:
    """The sidecar says what the model learned and how well it did."""
    sidecar = read_sidecar(settings.out)
    sidecar.provenance.update({
        "scene": settings.scene or Path(report.footage["source"].rstrip("/")).name,
        "footage": report.footage,
        "learned_from": "random weights" if settings.scratch else str(settings.from_model),
        "recipe": {**settings.recipe, "frame_strides": list(settings.recipe["frame_strides"]),
                   "pseudo_strides": list(settings.recipe["pseudo_strides"]),
                   "steps": settings.planned_steps},
        "held_out_clips": report.split["calibrate"] + report.split["judge"],
        "split": report.split})
    sidecar.metrics["learn"] = {
        "judged_on": report.split["judge"], "new": report.new.to_dict(),
        "before": report.before.to_dict() if report.before else None,
        "validation_score": report.validation["score"] if report.validation else None,
        "scoring": report.scoring, "scoring_validation": report.scoring_scores,
        "steps": report.steps, "train_seconds": round(report.train_seconds, 1)}
    write_sidecar(settings.out, sidecar)
    (settings.work_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2,
                                                              default=str) + "\n")


__all__ = ["LearnReport", "LearnSettings", "LearnStopped", "RecordingError", "learn"]
