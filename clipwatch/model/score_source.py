"""Scoring one recorded or streamed source offline, through the objects the service runs.

`score_frames` is the offline driver of the one scoring path: each frame goes into the
source's `ClipScorer`, due requests are batched (up to `batch_size`, for throughput) into
the `Reconstructor`, and their reconstructions go back to the scorer. The live service
drives the same two objects from its inference loop, batching across cameras instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from clipwatch.model.clip_scorer import ClipScorer, FrameScore
from clipwatch.model.reconstructor import ClipRequest, Reconstructor
from clipwatch.stream.sources import Frame


def run_requests(scorer: ClipScorer, reconstructor: Reconstructor,
                 requests: list[ClipRequest]) -> list[FrameScore]:
    """Reconstruct a source's due requests in one call and score them, in order."""
    scores: list[FrameScore] = []
    for request, recon in zip(requests, reconstructor.reconstruct(requests), strict=True):
        scores.extend(scorer.score(request, recon))
    return scores


def score_frames(frames: Iterable[Frame], scorer: ClipScorer, reconstructor: Reconstructor,
                 batch_size: int = 8) -> Iterator[FrameScore]:
    """Scores of `frames`, as they become available (the rest when the frames end)."""
    pending: list[ClipRequest] = []
    for frame in frames:
        request = scorer.add(frame)
        if request is not None:
            pending.append(request)
        if len(pending) >= max(1, batch_size):
            yield from run_requests(scorer, reconstructor, pending)
            pending = []
    last = scorer.flush()
    if last is not None:
        pending.append(last)
    if pending:
        yield from run_requests(scorer, reconstructor, pending)
    reconstructor.reset(scorer.camera)  # the source ended: free its caches
