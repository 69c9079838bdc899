"""The camera side of the scorers (remote.py) against a real `Scorer` (scorer.py) with the
shipped model, in this process: only Serve's transport is left out (the Ray tests beside
this one run it). A replica that loses a camera's cache gets it rebuilt from a resend,
exactly (the same regularities as one unbroken run); a replica that dies costs one failed,
retried call; an error of the model itself is not retried."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import numpy as np
import pytest
from ray.exceptions import ActorDiedError

from clipwatch.cluster.remote import ScorerUnavailable, ServeReconstructor
from clipwatch.cluster.scorer import Scorer
from clipwatch.model.bench import load_frames
from clipwatch.model.clip_scorer import ClipScorer
from clipwatch.model.detector import DetectorOptions
from clipwatch.model.reconstructors import load_model
from clipwatch.paths import DEFAULT_MODEL


class LocalHandle:
    """A deployment handle's call shape (`options(...).remote(x).result()`), answered by a
    real Scorer here; `fail` lists exceptions to raise instead, one per call."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.fail: list[Exception] = []
        self.sessions: list[str] = []

    def options(self, session_id: str):
        self.sessions.append(session_id)
        return self

    def remote(self, calls):
        return self

    def result(self, timeout_s: float):
        raise NotImplementedError  # replaced per call below

    def __call__(self, calls):
        if self.fail:
            raise self.fail.pop(0)
        return asyncio.run(self.scorer._score_batch([calls]))[0]


class Answer:
    def __init__(self, handle: LocalHandle, calls) -> None:
        self.handle, self.calls = handle, calls

    def result(self, timeout_s: float):
        return self.handle(self.calls)


LocalHandle.remote = lambda self, calls: Answer(self, calls)


@pytest.fixture(scope="module")
def clips(sample_clip):
    model = load_model(DEFAULT_MODEL)
    scorer = ClipScorer("cam", model.settings(1, model.sidecar.calibration))
    requests = [r for f in load_frames(sample_clip) if (r := scorer.add(f)) is not None]
    return model, requests


def served(clips, lose_at=(), fail_at=()):
    model, requests = clips
    scorer = Scorer(str(DEFAULT_MODEL), asdict(DetectorOptions()), "auto", 16, 0.0)
    handle = LocalHandle(scorer)
    remote = ServeReconstructor(handle, scorer.describe(), session="worker-0")
    out = []
    for k, request in enumerate(requests):
        if k in lose_at:  # what a restarted replica holds of the camera: nothing
            scorer.continuity.forget(["cam"])
            scorer.model.reconstructor.reset("cam")
        if k in fail_at:
            handle.fail.append(ActorDiedError())
        out.extend(remote.reconstruct([request]))
    return out, remote


def test_a_lost_cache_is_rebuilt_exactly_from_a_resend(clips):
    model, requests = clips
    reference = [model.reconstructor.reconstruct([r])[0] for r in requests]
    model.reconstructor.reset("cam")
    lost = (37, 104, 171)  # at different phases of the states' restart schedule
    out, remote = served(clips, lose_at=lost)
    assert remote.misses["cam"] == len(lost) and remote.failed_calls["cam"] == 0
    worst = max(float(np.abs(a - b).max()) for a, b in zip(out, reference, strict=True))
    assert worst < 1e-5


def test_a_dead_replica_costs_one_failed_call_retried(clips):
    model, requests = clips
    out, remote = served(clips, fail_at=(50,), lose_at=(50,))
    assert remote.failed_calls["cam"] == 1 and len(out) == len(requests)
    model.reconstructor.reset("cam")
    reference = [model.reconstructor.reconstruct([r])[0] for r in requests]
    assert max(float(np.abs(a - b).max()) for a, b in zip(out, reference, strict=True)) < 1e-5


def test_an_error_of_the_model_is_not_retried(clips):
    _, requests = clips
    scorer = Scorer(str(DEFAULT_MODEL), asdict(DetectorOptions()), "auto", 16, 0.0)
    handle = LocalHandle(scorer)
    remote = ServeReconstructor(handle, scorer.describe(), session="worker-0", retry_s=600)
    handle.fail.append(ValueError("input shape mismatch"))
    with pytest.raises(ScorerUnavailable, match="the scorer failed: ValueError"):
        remote.reconstruct(requests[:1])
    assert remote.failed_calls["cam"] == 0  # given up at once, not retried for 10 minutes
