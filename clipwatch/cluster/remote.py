"""ServeReconstructor: the camera side of the scorers, a `Reconstructor` whose work runs on
Ray Serve replicas (scorer.py).

A pass's due clips go out as one `ScoreCall` per camera, all in one Serve request routed by
the worker (`session_id`: Serve's consistent-hash router keeps a session on one replica), so
each camera's cache stays on one replica, and a replica batches the requests of every worker
that reaches it. A replica that does not hold the camera's cache answers
`MISS`; the camera then resends its recent clips ahead of the due ones (`replay`), enough for
the replica to rebuild it: a miss costs a resend, never a gap. A call that fails (its replica
died, its node went away) is retried the same way, with a short backoff, until
`retry_s` has passed; the counts of both are kept per camera.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from clipwatch.cluster.calls import MISS, ScoreCall, packed
from clipwatch.errors import ClipwatchError
from clipwatch.model.reconstructor import ClipRequest
from clipwatch.stream.preprocess import InputSpec

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 15.0  # a call not answered by then counts as failed (its replica is gone)
BACKOFF_S = (0.2, 2.0)  # first and longest wait between tries of a failed call


class ScorerUnavailable(ClipwatchError):
    """No scorer answered a camera's clips within the retry time."""


class ServeReconstructor:
    """`reconstruct` through a Serve deployment handle (see the module docstring)."""

    def __init__(self, handle: Any, description: dict[str, Any], session: str,
                 replay_frames: int = 20, retry_s: float = 120.0) -> None:
        self.handle = handle
        # The routing key: a worker's cameras go to one replica together, in one request
        # per pass (one Serve request per camera cost 11 CPU-ms a clip; see bench.py).
        self.session = session
        self.clip_length: int | None = description["clip_length"]
        self.decodes_any_position: bool = description["decodes_any_position"]
        self.device: str = description["device"]
        self.spec = InputSpec.from_dict(description["input_spec"])
        # A model carrying state from frame to frame is rebuilt from its recent frames; a
        # clip model's request holds its whole clip already.
        self.replay_frames = replay_frames if self.clip_length == 1 else 0
        self.retry_s = retry_s
        self._after: dict[str, int] = {}  # camera -> last frame index its replica holds
        self._recent: dict[str, deque[ClipRequest]] = {}  # camera -> clips to replay
        self.failed_calls: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.calls = 0

    def reset(self, camera: str) -> None:
        self._after.pop(camera, None)
        self._recent.pop(camera, None)

    # -- calls ---------------------------------------------------------------------------

    def _call(self, camera: str, requests: list[ClipRequest], rebuild: bool) -> ScoreCall:
        """The call for a camera's due clips: continuing its replica's cache, or starting
        afresh from its recent clips (`rebuild`, or nothing to continue)."""
        if requests[0].fresh:
            self.reset(camera)
            return ScoreCall(camera, tuple(requests), after=None)
        if not rebuild and camera in self._after:
            return ScoreCall(camera, tuple(requests), after=self._after[camera])
        recent = list(self._recent.get(camera, ()))
        sent = recent + requests
        sent[0] = replace(sent[0], fresh=True)
        return ScoreCall(camera, tuple(sent), after=None, replay=len(recent))

    def _answered(self, call: ScoreCall) -> None:
        self._after[call.camera] = call.last_index
        if self.replay_frames:
            recent = self._recent.setdefault(call.camera, deque(maxlen=self.replay_frames))
            recent.extend(call.requests[call.replay:])

    def reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        by_camera: dict[str, list[int]] = {}
        for k, request in enumerate(requests):
            by_camera.setdefault(request.camera, []).append(k)
        out: list[np.ndarray | None] = [None] * len(requests)
        wire = packed(requests, self.spec)
        pending = {camera: self._call(camera, [wire[k] for k in keys], rebuild=False)
                   for camera, keys in by_camera.items()}
        started, wait = time.monotonic(), BACKOFF_S[0]
        while pending:
            calls = list(pending.values())
            self.calls += 1
            try:
                answers = self.handle.options(session_id=self.session).remote(calls).result(
                    timeout_s=CALL_TIMEOUT_S)
            except Exception as exc:  # the replica died, its node is gone, a timeout
                log.warning("a scorer call for cameras %s failed (%s); retrying",
                            ", ".join(pending), type(exc).__name__)
                for camera, call in pending.items():
                    self.failed_calls[camera] += 1
                    self._after.pop(camera, None)  # the replica's cache is unknown now
                    pending[camera] = self._call(camera, self._due(call), rebuild=True)
                if time.monotonic() - started > self.retry_s:
                    for camera in pending:
                        self.reset(camera)
                    raise ScorerUnavailable(
                        f"no scorer answered cameras {', '.join(sorted(pending))} within "
                        f"{self.retry_s:.0f} s") from None
                time.sleep(wait)
                wait = min(wait * 2, BACKOFF_S[1])
                continue
            retry: dict[str, ScoreCall] = {}
            for call, answer in zip(calls, answers, strict=True):
                if isinstance(answer, str) and answer == MISS:
                    self.misses[call.camera] += 1
                    retry[call.camera] = self._call(call.camera, self._due(call), rebuild=True)
                    continue
                self._answered(call)
                for k, recon in zip(by_camera[call.camera], answer, strict=True):
                    out[k] = recon
            pending = retry
        return out  # type: ignore[return-value]

    @staticmethod
    def _due(call: ScoreCall) -> list[ClipRequest]:
        """A call's own clips (without what it replayed), as first sent."""
        return list(call.requests[call.replay:])
