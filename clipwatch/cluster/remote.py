"""ServeReconstructor: the camera side of the scorers, a `Reconstructor` whose work runs on
Ray Serve replicas (scorer.py).

A pass's due clips go out as one `ScoreCall` per camera, all in one Serve request routed by
the worker (`session_id`: Serve's consistent-hash router keeps a session on one replica), so
each camera's cache stays on one replica, and a replica batches the requests of every worker
that reaches it. A replica that does not hold the camera's cache answers `MISS`; the camera
then resends its recent clips ahead of the due ones (`replay`), from where the rebuilt cache
is the one it would have had (`ReplayPlan`, calls.py): a miss costs a resend, never a gap. A
call whose replica went away (died, its node lost, no answer in `CALL_TIMEOUT_S`) is retried
the same way, with a short backoff, until `retry_s` has passed; an error the model itself
raised is not retried. The counts of both are kept per camera.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from clipwatch.cluster.calls import MISS, ReplayPlan, ScoreCall, packed
from clipwatch.errors import ClipwatchError
from clipwatch.model.reconstructor import ClipRequest
from clipwatch.stream.preprocess import InputSpec

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 15.0  # a call not answered by then counts as failed (its replica is gone)
BACKOFF_S = (0.2, 2.0)  # first and longest wait between tries of a failed call


class ScorerUnavailable(ClipwatchError):
    """No scorer answered a camera's clips within the retry time, or the model failed."""


def _replica_gone(exc: BaseException) -> bool:
    """Whether a failed call is worth retrying: its replica or node went away, or it timed
    out; not an error the model raised on its input (it would fail again)."""
    from ray.exceptions import RayActorError, RaySystemError, TaskCancelledError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    return isinstance(exc, (RayActorError, RaySystemError, TaskCancelledError, TimeoutError,
                            BackPressureError, DeploymentUnavailableError))


@dataclass
class _Line:
    """What a camera's calls rely on: the replica cache they continue, the clips sent since
    the camera's start (`seen`), and the recent ones to replay (`(number, clip)`)."""

    recent: deque[tuple[int, ClipRequest]]
    held: tuple[str, int] | None = None  # (epoch, last frame) its replica holds
    seen: int = 0
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


class ServeReconstructor:
    """`reconstruct` through a Serve deployment handle (see the module docstring)."""

    def __init__(self, handle: Any, description: dict[str, Any], session: str,
                 retry_s: float = 120.0) -> None:
        self.handle = handle
        # The routing key: a worker's cameras go to one replica together, in one request
        # per pass (one Serve request per camera cost 11 CPU-ms a clip; see bench.py).
        self.session = session
        self.clip_length: int | None = description["clip_length"]
        self.decodes_any_position: bool = description["decodes_any_position"]
        self.device: str = description["device"]
        self.spec = InputSpec.from_dict(description["input_spec"])
        self.plan = ReplayPlan(**description["replay"])
        self.retry_s = retry_s
        self._lines: dict[str, _Line] = {}
        self.failed_calls: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.calls = 0

    def reset(self, camera: str) -> None:
        self._lines.pop(camera, None)

    def _line(self, camera: str) -> _Line:
        line = self._lines.get(camera)
        if line is None:
            line = self._lines[camera] = _Line(deque(maxlen=self.plan.keep))
        return line

    # -- calls ---------------------------------------------------------------------------

    def _call(self, camera: str, requests: list[ClipRequest], rebuild: bool) -> ScoreCall:
        """The call for a camera's due clips: continuing its replica's cache, or starting
        one afresh (its first clips, `rebuild`, or nothing to continue)."""
        if requests[0].fresh:
            self.reset(camera)
        line = self._line(camera)
        if requests[0].fresh:
            return ScoreCall(camera, tuple(requests), line.epoch, after=None)
        if not rebuild and line.held is not None:
            return ScoreCall(camera, tuple(requests), line.epoch, after=line.held)
        replayed = self._replayed(line)
        sent = replayed + requests
        sent[0] = replace(sent[0], fresh=True)
        line.epoch = uuid.uuid4().hex[:12]  # a new cache: an index alone could match the old
        return ScoreCall(camera, tuple(sent), line.epoch, after=None, replay=len(replayed))

    def _replayed(self, line: _Line) -> list[ClipRequest]:
        """The recent clips that rebuild the cache: from the latest clip numbered a multiple
        of the plan's period at least a period back (the camera's first clip if all since
        it are kept); all that is kept when neither is (a model that cannot be rebuilt
        exactly)."""
        kept = list(line.recent)
        if not kept:
            return []
        period = self.plan.period
        starts = [k for k, (number, _) in enumerate(kept)
                  if number % period == 0 and line.seen - number >= period]
        start = starts[-1] if starts else 0
        return [clip for _, clip in kept[start:]]

    def _answered(self, call: ScoreCall) -> None:
        line = self._line(call.camera)
        line.held = call.holds
        for clip in call.requests[call.replay:]:
            if self.plan.keep:
                line.recent.append((line.seen, clip))
            line.seen += 1

    def reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        by_camera: dict[str, list[int]] = {}
        for k, request in enumerate(requests):
            by_camera.setdefault(request.camera, []).append(k)
        out: list[np.ndarray | None] = [None] * len(requests)
        wire = packed(requests, self.spec)
        due = {camera: [wire[k] for k in keys] for camera, keys in by_camera.items()}
        pending = {camera: self._call(camera, clips, rebuild=False)
                   for camera, clips in due.items()}
        deadline, wait = time.monotonic() + self.retry_s, BACKOFF_S[0]
        while pending:
            calls = list(pending.values())
            self.calls += 1
            try:
                answers = self.handle.options(session_id=self.session).remote(calls).result(
                    timeout_s=CALL_TIMEOUT_S)
            except Exception as exc:
                self._failed(pending, due, exc, deadline)
                time.sleep(wait)
                wait = min(wait * 2, BACKOFF_S[1])
                continue
            retry: dict[str, ScoreCall] = {}
            for call, answer in zip(calls, answers, strict=True):
                if isinstance(answer, str) and answer == MISS:
                    self.misses[call.camera] += 1
                    retry[call.camera] = self._call(call.camera, due[call.camera],
                                                    rebuild=True)
                    continue
                self._answered(call)
                for k, recon in zip(by_camera[call.camera], answer, strict=True):
                    out[k] = recon
            if retry and time.monotonic() > deadline:  # a replay is never a miss: a bug
                self._give_up(retry, "scorers kept missing their caches")
            pending = retry
        return out  # type: ignore[return-value]

    def _failed(self, pending: dict[str, ScoreCall], due: dict[str, list[ClipRequest]],
                exc: Exception, deadline: float) -> None:
        """A call that failed: count it for its cameras and make their next try rebuild the
        cache (its replica is unknown now); give up on an error that would repeat, or once
        the retry time is over."""
        if not _replica_gone(exc):
            self._give_up(pending, f"the scorer failed: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}")
        log.warning("a scorer call for cameras %s failed (%s); retrying", ", ".join(pending),
                    type(exc).__name__)
        for camera in pending:
            self.failed_calls[camera] += 1
            self._line(camera).held = None
            pending[camera] = self._call(camera, due[camera], rebuild=True)
        if time.monotonic() > deadline:
            self._give_up(pending, f"no scorer answered within {self.retry_s:.0f} s")

    def _give_up(self, pending: dict[str, ScoreCall], why: str):
        for camera in pending:
            self.reset(camera)  # their next clips start afresh (the pipeline sees a gap)
        raise ScorerUnavailable(f"cameras {', '.join(sorted(pending))}: {why}")
