"""Learning jobs: a camera's recording becomes its own model, in the background.

POST /api/learning starts one job at a time: `clipwatch learn` (learn.py) on a recording
(server/recordings.py), in a child process so that training never holds the service's
interpreter or memory, at a lower priority (`nice`) and with bounded threads
(`learning.threads`) so that the live cameras keep their frame rate; on CUDA when the child
finds a GPU. The child says where it stands in its work folder's progress.json
(learn_progress.py); a monitor thread reads it about once a second and sends the job's view
to viewers (steps, loss, clips/s, time left).

Everything a job writes stays in `<storage>/learning/<job>/` until it succeeds: then the
model, its sidecar and fast parts move into the model folder, the .onnx last (the model
list only shows a model whose sidecar is there). A cancelled job is killed and its folder
removed, so nothing half-written is left. A service stopping asks the child to stop
(SIGTERM: it checkpoints at the next step) and the next start relaunches the job, which
resumes from that checkpoint; the child also gets SIGTERM if the service dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipwatch.errors import ClipwatchError
from clipwatch.jsonfile import write_json
from clipwatch.learn import check_held_out
from clipwatch.learn_progress import read_progress
from clipwatch.model.sidecar import read_sidecar
from clipwatch.server.recordings import ACTIVE as RECORDING_ACTIVE
from clipwatch.server.recordings import read_plan
from clipwatch.stream.recording import RecordingError, read_info, split_chunks

log = logging.getLogger(__name__)

JOB = "job.json"
POLL_S = 0.5
# Yielding to the live cameras: while any camera is sampled down (the scoring cannot keep up)
# the child is paused (SIGSTOP) until the sampling lifts. Paused this long with the cameras
# still behind, the training is not the cause: it resumes and does not yield again for a
# while, so that an overloaded service does not starve the job forever.
YIELD_MAX_S = 10.0
YIELD_BACKOFF_S = 60.0
STOP_WAIT_S = 30.0  # a stopping service waits this long for the child's checkpoint
NAME_PATTERN = r"[A-Za-z0-9_-]{1,64}"


class UnknownJob(ClipwatchError):
    """No learning job has that id."""


class LearningConflict(ClipwatchError):
    """A job is running already, the model name is taken, or the recording is not ready."""


@dataclass
class JobSpec:
    """What was asked."""

    camera: str
    recording: str
    name: str  # the model file's stem in the model folder
    from_model: str  # the model to fine-tune (and judge as "before")
    scratch: bool = False
    train_minutes: float = 20.0
    steps: int | None = None
    scene: str = ""


@dataclass
class Job:
    id: str
    spec: JobSpec
    state: str = "running"  # running, done, failed, cancelled
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    model: str | None = None  # the file in the model folder, once done
    error: str | None = None
    result: dict[str, Any] | None = None
    launches: int = 0  # 1, plus one per restart that resumed it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**{**data, "spec": JobSpec(**data["spec"])})


def _child_setup(nice: int) -> Callable[[], None]:
    def setup() -> None:
        os.nice(nice)
        # PR_SET_PDEATHSIG: if the service dies, the child is asked to stop (and checkpoints)
        # instead of training on unseen; a restarted service relaunches it.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    return setup


class LearningJobs:
    def __init__(self, storage_dir: Path, model_folder: Path, threads: int, nice: int,
                 publish: Callable[[dict[str, Any]], None],
                 cameras_behind: Callable[[], bool] = lambda: False) -> None:
        self.root = Path(storage_dir) / "learning"
        self.model_folder = Path(model_folder)
        self.threads = threads
        self.nice = nice
        self.publish = publish
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self._process: subprocess.Popen | None = None
        self._running: Job | None = None
        self._monitor: threading.Thread | None = None
        self._stopping = False
        self._cancelled: set[str] = set()
        self.cameras_behind = cameras_behind
        self._paused_at: float | None = None  # when the child was paused for the cameras
        self._no_yield_until = 0.0
        self.yielded_s = 0.0  # the running job's time paused for the cameras, this run

    # -- life cycle ----------------------------------------------------------------------

    def start(self, recording_folder: Callable[[str], Path]) -> None:
        """Load the jobs; relaunch the one a stop or crash interrupted (it resumes)."""
        self.recording_folder = recording_folder
        if self.root.exists():
            for folder in sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime):
                try:
                    job = Job.from_dict(json.loads((folder / JOB).read_text()))
                except (OSError, ValueError, TypeError, KeyError):
                    continue
                self.jobs[job.id] = job
        for job in self.jobs.values():
            if job.state == "running" and self._running is None:
                log.info("learning job %s was interrupted; it resumes", job.id)
                try:
                    self._launch(job)
                except ClipwatchError as exc:
                    self._finish(job, "failed", str(exc))

    def stop(self) -> None:
        """Ask the child to stop at its next step (it checkpoints); the job stays running
        for the next start."""
        with self.lock:
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            self._resume(process)  # a paused child must run to stop (and checkpoint)
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                log.warning("the learning child did not stop in %.0f s; killed", STOP_WAIT_S)
                self._kill(process)
        if self._monitor is not None:
            self._monitor.join(5)

    # -- the API -------------------------------------------------------------------------

    def begin(self, spec: JobSpec) -> dict[str, Any]:
        if not re.fullmatch(NAME_PATTERN, spec.name):
            raise LearningConflict(f"model name {spec.name!r}: use 1-64 letters, digits, - "
                                   "and _")
        if (self.model_folder / f"{spec.name}.onnx").exists():
            raise LearningConflict(f"a model named {spec.name}.onnx is in the model folder "
                                   "already; choose another name")
        folder = self.recording_folder(spec.recording)  # UnknownRecording
        plan = read_plan(folder)
        if plan is None:
            raise RecordingError(f"recording {spec.recording}: its plan.json cannot be read")
        if plan.state in RECORDING_ACTIVE:
            raise LearningConflict(f"recording {spec.recording} is still in progress; stop "
                                   "it or wait until it is done")
        # RecordingError (422): too few chunks, or too short to calibrate on.
        check_held_out(folder, split_chunks(read_info(folder).chunks),
                       read_sidecar(spec.from_model).input_spec.clip_length)
        with self.lock:
            if self._running is not None:
                raise LearningConflict(f"learning job {self._running.id} is running; one "
                                       "job at a time (cancel it or wait)")
            if any(j.spec.name == spec.name and j.state == "running"
                   for j in self.jobs.values()):
                raise LearningConflict(f"a job is making {spec.name}.onnx already")
            job = Job(id=uuid.uuid4().hex[:12], spec=spec)
            self.jobs[job.id] = job
            (self.root / job.id).mkdir(parents=True)
            self._save(job)
            self._launch(job)
        return self.view(job.id)

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        with self.lock:
            if job.state != "running":
                raise LearningConflict(f"job {job_id} is {job.state}; only a running job can "
                                       "be cancelled")
            self._cancelled.add(job.id)
            process = self._process if self._running is job else None
        if process is not None:
            self._kill(process)
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(10)
        if job.state == "running":  # no monitor ended it (not launched in this run)
            self._end_cancelled(job)
        return self.view(job.id)

    def in_use(self, recording_folder: Path) -> bool:
        return any(j.state == "running" and self.recording_folder(j.spec.recording) ==
                   recording_folder for j in self.jobs.values())

    def views(self) -> list[dict[str, Any]]:
        return [self.view(j) for j in sorted(self.jobs, key=lambda j: self.jobs[j].created_at,
                                             reverse=True)]

    def view(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        spec = job.spec
        running = job.state == "running"
        progress = read_progress(self._work(job)) if running else None
        return {"id": job.id, "camera": spec.camera, "recording": spec.recording,
                "name": spec.name, "from_model": Path(spec.from_model).name,
                "scratch": spec.scratch, "train_minutes": spec.train_minutes,
                "state": job.state, "created_at": job.created_at,
                "finished_at": job.finished_at, "model": job.model, "error": job.error,
                "progress": progress, "result": job.result, "launches": job.launches,
                "yielding": running and self._running is job and self._paused_at is not None,
                "yielded_seconds": round(self.yielded_s, 1) if self._running is job else None}

    # -- the child -----------------------------------------------------------------------

    def _work(self, job: Job) -> Path:
        return self.root / job.id / "work"

    def _launch(self, job: Job) -> None:
        spec = job.spec
        work = self._work(job)
        work.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "clipwatch", "learn",
                   str(self.recording_folder(spec.recording)),
                   "--out", str(work / "model" / f"{spec.name}.onnx"), "--work", str(work),
                   "--from", spec.from_model, "--train-minutes", str(spec.train_minutes),
                   "--threads", str(self.threads), "--scene", spec.scene or spec.camera]
        if spec.scratch:
            command.append("--scratch")
        if spec.steps:
            command += ["--steps", str(spec.steps)]
        threads = str(self.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "PYTHONUNBUFFERED": "1"}
        # The child is started by the job's own thread, which lives as long as the child:
        # PR_SET_PDEATHSIG fires when the *thread* that started it ends (an API worker
        # thread retired by its pool would stop the job).
        started: dict[str, Any] = {}
        ready = threading.Event()
        self._running = job
        self._monitor = threading.Thread(target=self._run, name=f"learning-{job.id}",
                                         args=(job, command, env, started, ready), daemon=True)
        self._monitor.start()
        ready.wait(30)
        if "error" in started or "process" not in started:
            self._running = None
            raise ClipwatchError("cannot start the learning process: "
                                 f"{started.get('error', 'it did not start in 30 s')}")
        job.launches += 1
        self._save(job)
        log.info("learning job %s: %s", job.id, " ".join(command[2:]))

    def _run(self, job: Job, command: list[str], env: dict[str, str], started: dict[str, Any],
             ready: threading.Event) -> None:
        try:
            with open(self._work(job) / "learn.log", "ab") as log_file:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                           stderr=subprocess.STDOUT, env=env,
                                           preexec_fn=_child_setup(self.nice),
                                           start_new_session=True)
        except OSError as exc:
            started["error"] = str(exc)
            ready.set()
            return
        self._process = process
        started["process"] = process
        ready.set()
        self._watch(job, process)

    def _watch(self, job: Job, process: subprocess.Popen) -> None:
        """Progress to viewers until the child ends; then the model goes in place."""
        seen = None
        self._paused_at, self._no_yield_until, self.yielded_s = None, 0.0, 0.0
        while process.poll() is None:
            self._yield_to_cameras(process)
            progress = read_progress(self._work(job))
            if progress is not None and progress.get("updated_at") != seen:
                seen = progress.get("updated_at")
                self.publish(self.view(job.id))
            time.sleep(POLL_S)
        with self.lock:
            self._process, self._running = None, None
            cancelled = job.id in self._cancelled
            stopping = self._stopping
        if cancelled:
            self._end_cancelled(job)
        elif process.returncode == 0:
            try:
                self._publish_model(job)
            except (OSError, ClipwatchError) as exc:
                self._finish(job, "failed", f"cannot put the model in place: {exc}")
        elif stopping:
            log.info("learning job %s stopped with the service; it resumes at the next start",
                     job.id)
        else:
            progress = read_progress(self._work(job)) or {}
            self._finish(job, "failed", progress.get("error") or self._last_log_line(job)
                         or f"the learning process ended with status {process.returncode}")

    def _yield_to_cameras(self, process: subprocess.Popen) -> None:
        now = time.monotonic()
        with self.lock:
            if self._stopping or process.poll() is not None:
                return
            behind = self.cameras_behind()
            if self._paused_at is None:
                if behind and now >= self._no_yield_until:
                    self._signal(process, signal.SIGSTOP)
                    self._paused_at = now
            elif not behind or now - self._paused_at > YIELD_MAX_S:
                self._resume(process)
                if behind:  # not the training's doing
                    self._no_yield_until = now + YIELD_BACKOFF_S

    def _resume(self, process: subprocess.Popen) -> None:
        if self._paused_at is not None:
            self.yielded_s += time.monotonic() - self._paused_at
            self._paused_at = None
        self._signal(process, signal.SIGCONT)

    @staticmethod
    def _signal(process: subprocess.Popen, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def _publish_model(self, job: Job) -> None:
        name = job.spec.name
        made = self._work(job) / "model"
        target = self.model_folder / f"{name}.onnx"
        if target.exists():
            raise ClipwatchError(f"{target.name} appeared in the model folder meanwhile")
        files = sorted(made.glob(f"{name}.*"), key=lambda p: p.name == target.name)  # .onnx last
        for path in files:
            shutil.move(str(path), self.model_folder / path.name)
        report = json.loads((self._work(job) / "report.json").read_text())
        new, before = report["new"], report.get("before")
        job.result = {
            "false_alarm_rate": new["false_alarm_rate"],
            "alerts_per_hour": new["alerts_per_hour"], "threshold": new["threshold"],
            "mean_error": new["mean_error"], "judged_seconds": new["seconds"],
            "before": None if before is None else {
                "model": before["model"], "false_alarm_rate": before["false_alarm_rate"],
                "alerts_per_hour": before["alerts_per_hour"],
                "mean_error": before["mean_error"]},
            "validation_score": (report.get("validation") or {}).get("score"),
            "steps": report["steps"], "train_seconds": report["train_seconds"],
            "footage_minutes": report["footage"]["minutes"],
            "seconds": time.time() - job.created_at}
        shutil.rmtree(self._work(job) / "train", ignore_errors=True)  # checkpoints: done with
        job.model = target.name
        self._finish(job, "done")
        log.info("learning job %s made %s in %.1f min", job.id, target.name,
                 job.result["seconds"] / 60)

    def _end_cancelled(self, job: Job) -> None:
        shutil.rmtree(self._work(job), ignore_errors=True)
        self._cancelled.discard(job.id)
        self._finish(job, "cancelled")

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished_at = state, error, time.time()
        self._save(job)
        self.publish(self.view(job.id))

    def _kill(self, process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def _last_log_line(self, job: Job) -> str | None:
        try:
            lines = (self._work(job) / "learn.log").read_text(errors="replace").splitlines()
        except OSError:
            return None
        lines = [ln for ln in lines if ln.strip()]
        return lines[-1][-300:] if lines else None

    def _save(self, job: Job) -> None:
        folder = self.root / job.id
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / JOB, job.to_dict())

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no learning job {job_id!r}")
        return job
