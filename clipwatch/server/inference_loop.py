"""InferenceLoop: the one thread that runs the model over the due clips of every camera.

Each pass takes every camera's due requests, reconstructs them in batches of up to
`max_batch` (so the cameras that run the same model share each ONNX Runtime call; cameras
with their own models get their own calls), and hands each camera its reconstructions. It
measures the cost of a clip, and once a second shares that capacity among the cameras
(balance.py): faster ones sample their frames down evenly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from clipwatch.model.reconstructor import ClipRequest
from clipwatch.server.balance import CameraDemand, plan_rates
from clipwatch.server.pipeline import CameraPipeline, Services

log = logging.getLogger(__name__)
REPEAT_LOG_S = 60.0  # a failure that repeats is logged once, then counted once a minute


class InferenceLoop:
    def __init__(self, services: Services,
                 pipelines: Callable[[], list[CameraPipeline]], balance: bool = True) -> None:
        self.s = services
        # Sampling fast cameras down to this process's measured capacity (off in cluster
        # mode: the scorers' capacity is elsewhere, and a pass's time there is latency).
        self.balance = balance
        self._pipelines = pipelines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self.error: str | None = None
        self.seconds_per_clip: float | None = None  # measured, smoothed
        self._balanced_at = 0.0
        self._cameras: dict[str, CameraPipeline] = {}  # the cameras of the last pass
        self._repeats, self._repeats_logged_at = 0, 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.s.wake.set()
        self._thread.join(10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.s.wake.wait(0.5)
            self.s.wake.clear()
            try:
                self.run_once()
            except Exception as exc:  # keep scoring the other cameras; readiness shows it
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """Log a failure with its traceback the first time; the same failure again on every
        pass is counted, and the count logged once a minute, not a traceback per pass."""
        error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if error != self.error:
            self.error, self._repeats, self._repeats_logged_at = error, 0, now
            log.exception("inference loop failed; continuing")
            return
        self._repeats += 1
        if now - self._repeats_logged_at >= REPEAT_LOG_S:
            log.error("inference loop: the same failure %d more times (%s)", self._repeats,
                      error)
            self._repeats, self._repeats_logged_at = 0, now

    def run_once(self) -> int:
        """Score every clip that is due now; returns how many."""
        work: list[tuple[CameraPipeline, ClipRequest]] = []
        pipelines = self._pipelines()
        current = {p.camera.id: p for p in pipelines}
        for camera, gone in self._cameras.items():
            if current.get(camera) is not gone:
                # Removed, or replaced (new settings or model): the old pipeline's model
                # forgets the camera's caches, on this thread (never while a call runs).
                gone.model.reconstructor.reset(camera)
        self._cameras = current
        for pipeline in pipelines:
            pipeline.grabber.check_stall()
            work.extend((pipeline, request) for request in pipeline.take_requests())
        started_all = time.perf_counter()
        for model_work in by_model(work):
            self._score(model_work)
        if work:
            spc = (time.perf_counter() - started_all) / len(work)
            self.seconds_per_clip = spc if self.seconds_per_clip is None else \
                0.8 * self.seconds_per_clip + 0.2 * spc
        if self.balance and time.monotonic() - self._balanced_at >= 1.0:
            self._balanced_at = time.monotonic()
            balance_cameras(pipelines, self.seconds_per_clip)
        return len(work)

    def _score(self, work: list[tuple[CameraPipeline, ClipRequest]]) -> None:
        """Reconstruct the clips of cameras that share one model, in batches across them."""
        model = work[0][0].model
        size = model.detector.options.max_batch
        for start in range(0, len(work), size):
            # a camera removed while this pass runs costs no more scoring: its clips go
            chunk = [(p, r) for p, r in work[start:start + size] if not p.stopped]
            if not chunk:
                continue
            started = time.perf_counter()
            try:
                recons = model.reconstructor.reconstruct([r for _, r in chunk])
            except Exception:
                # The frames of this call and of the calls after it in the pass are lost:
                # each camera goes on as after a gap, its caches restarted.
                rest = [(p, r) for p, r in work[start:] if not p.stopped]
                for pipeline in {id(p): p for p, _ in rest}.values():
                    pipeline.lost([r for p, r in rest if p is pipeline])
                    model.reconstructor.reset(pipeline.camera.id)
                raise
            self.s.metrics.inference_seconds.observe(time.perf_counter() - started)
            self.s.metrics.batch_clips.observe(len(chunk))
            for (pipeline, request), recon in zip(chunk, recons, strict=True):
                pipeline.handle(request, recon)
                if pipeline.stopped:  # removed during the call, which cached its frames anew
                    model.reconstructor.reset(pipeline.camera.id)


def by_model(work: list[tuple[CameraPipeline, ClipRequest]]
             ) -> list[list[tuple[CameraPipeline, ClipRequest]]]:
    """The due clips grouped by the model their camera runs (in the order first seen): one
    model's clips batch together, whichever cameras they come from."""
    groups: dict[int, list[tuple[CameraPipeline, ClipRequest]]] = {}
    for pipeline, request in work:
        groups.setdefault(id(pipeline.model), []).append((pipeline, request))
    return list(groups.values())


def balance_cameras(pipelines: list[CameraPipeline], seconds_per_clip: float | None) -> None:
    """Apply `plan_rates` (balance.py) to the live cameras.

    A camera learning its baseline is never sampled: a frame left out reads as fast motion
    to a model trained with pseudo-anomalies, and the baseline it learned would stay inflated
    (seen when a browser starting on the same two cores stalled the reader for a moment and
    the burst that followed was sampled: e_hi 498 instead of 189, and no alert after). If it
    cannot keep up, its queue drops frames instead, which the pipeline treats as a gap (the
    clip window and warm-up start again): slower to learn, never wrong."""
    live = {p.camera.id: p for p in pipelines
            if p.grabber.fps_in and p.grabber.status.state == "live"}
    demands = [CameraDemand(cid, p.grabber.fps_in, p.scorer.stride,
                            p.grabber.sample_fps is not None) for cid, p in live.items()]
    for camera, rate in plan_rates(demands, seconds_per_clip).items():
        learning = live[camera].live.learning
        live[camera].limit_rate(None if learning else rate)
