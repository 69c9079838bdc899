"""The scorers: a Ray Serve deployment running the model's ONNX Runtime parts.

Each replica loads the model once (CUDA where its node has a GPU, the CPU otherwise) and
batches the due clips of every camera that reaches it (`@serve.batch`, up to `max_batch`
calls). Calls are routed by camera (`session_id` through Serve's consistent-hash router) so
a camera keeps hitting the replica that holds its cache (a camera worker sends its
cameras' calls in one request, routed by the worker); a call that does not continue the
cache is answered `MISS` (calls.py) and the camera resends. A replica's
`max_ongoing_requests` is kept above the batch size: Serve's default would silently cap it.

The stand-in (`stand_in_batch_s`) runs no model: it sleeps that long per `max_batch` clips, as
a GPU would take for a batch, and answers the clips back as their own reconstructions. It exists for
`clipwatch bench --cluster`, which cannot show scaling with a real model on two cores.

A Triton backend would be another deployment with this call signature (`ScoreCall` in,
reconstructions or `MISS` out); nothing on the camera side would change.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from clipwatch.cluster.calls import MISS, Continuity, ScoreCall, replay_plan, unpacked
from clipwatch.model.detector import DetectorOptions

log = logging.getLogger(__name__)

SCORER_APP = "clipwatch-scorers"
CONSISTENT_HASH = "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"


class Scorer:
    """One replica (wrapped by `serve.deployment` in `scorer_deployment`)."""

    def __init__(self, model_path: str, options: dict[str, Any], variant: str,
                 max_batch: int, batch_wait_s: float,
                 stand_in_batch_s: float | None = None, settings: str = "") -> None:
        from clipwatch.model.reconstructors import load_model, make_reconstructor
        from clipwatch.model.sidecar import read_sidecar

        self.stand_in_batch_s = stand_in_batch_s
        self.settings = settings  # the digest of what it was deployed with (deploy_scorers)
        self.max_batch = max_batch
        self.continuity = Continuity()
        self.batches = 0
        self.clips = 0
        self.scored_at: dict[str, float] = {}  # camera -> when this replica last scored it
        if stand_in_batch_s is None:
            self.model = load_model(Path(model_path), DetectorOptions(**options), variant)
            recon = self.model.reconstructor
            self.device, self.variant = recon.device, self.model.variant
        else:
            self.model = None
            # The stand-in answers as the real variant would be asked.
            recon = make_reconstructor(variant, Path(model_path), DetectorOptions(device="cpu"))
            self.device, self.variant = "stand-in", "stand-in"
        self.clip_length = recon.clip_length
        self.decodes_any_position = recon.decodes_any_position
        self.spec = read_sidecar(Path(model_path)).input_spec
        self.replay = replay_plan(recon, self.spec.clip_length)
        if hasattr(self._score_batch, "set_max_batch_size"):  # as deployed (serve.batch)
            self._score_batch.set_max_batch_size(max_batch)
            self._score_batch.set_batch_wait_timeout_s(batch_wait_s)

    def describe(self) -> dict[str, Any]:
        """What the camera side needs to know of the model it is scored by, and where this
        replica runs."""
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        return {"node": node,
                "clip_length": self.clip_length, "device": self.device,
                "input_spec": self.spec.to_dict(), "replay": asdict(self.replay),
                "decodes_any_position": self.decodes_any_position, "variant": self.variant,
                "batches": self.batches, "clips": self.clips, "settings": self.settings,
                "scored_at": dict(self.scored_at)}

    async def __call__(self, calls: list[ScoreCall]) -> list[list[np.ndarray] | str]:
        """One worker's calls (one per camera) -> each call's reconstructions, or MISS."""
        return await self._score_batch(calls)

    async def _score_batch(self, requests: list[list[ScoreCall]]
                           ) -> list[list[list[np.ndarray] | str]]:
        """The calls of every request in the batch, reconstructed together."""
        calls = [call for request in requests for call in request]
        answers = await self._score_calls(calls)
        out, start = [], 0
        for request in requests:
            out.append(answers[start:start + len(request)])
            start += len(request)
        return out

    async def _score_calls(self, calls: list[ScoreCall]) -> list[list[np.ndarray] | str]:
        """Every call that continues its camera's cache, reconstructed in one batch."""
        answers: list[list[np.ndarray] | str] = [MISS] * len(calls)
        taken = [k for k, call in enumerate(calls) if self.continuity.continues(call)]
        # Two calls of one camera in a batch cannot both continue it: keep the first.
        seen: set[str] = set()
        taken = [k for k in taken if not (calls[k].camera in seen or seen.add(calls[k].camera))]
        if not taken:
            return answers
        chosen = [calls[k] for k in taken]
        requests = unpacked([r for call in chosen for r in call.requests], self.spec)
        self.continuity.forget([c.camera for c in chosen])  # until this batch succeeds
        recons = await asyncio.to_thread(self._reconstruct, requests)
        self.continuity.scored(chosen)
        now = time.time()
        self.scored_at.update((call.camera, now) for call in chosen)
        self.batches += 1
        self.clips += len(requests)
        start = 0
        for k, call in zip(taken, chosen, strict=True):
            mine = recons[start:start + len(call.requests)]
            answers[k] = mine[call.replay:]
            start += len(call.requests)
        return answers

    def _reconstruct(self, requests):
        if self.model is not None:
            return self.model.reconstructor.reconstruct(requests)
        # A GPU-like time: one batch time per `max_batch` clips (what one GPU call takes).
        time.sleep(self.stand_in_batch_s * -(-len(requests) // self.max_batch))
        return [r.frames[list(r.decode)] for r in requests]


def scorer_deployment(model_path: Path, options: DetectorOptions, variant: str,
                      replicas: int, max_batch: int, batch_wait_s: float,
                      cpus: float = 1.0, gpus: float = 0.0,
                      resources: dict[str, float] | None = None,
                      stand_in_batch_s: float | None = None):
    """The Serve application of `replicas` scorers (bound, ready for `serve.run`), and the
    digest of its settings."""
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    batched = serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_s)
    cls = type("Scorer", (Scorer,), {"_score_batch": batched(Scorer._score_batch)})
    actor_options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus}
    if resources:
        actor_options["resources"] = resources
    args = (str(model_path), asdict(options), variant, max_batch, batch_wait_s,
            stand_in_batch_s)
    # Serve restarts every replica when an application is deployed again, even unchanged: a
    # second web process compares this digest with the running replicas' first (runtime.py).
    settings = hashlib.sha256(json.dumps([args, replicas, actor_options], sort_keys=True,
                                         default=str).encode()).hexdigest()[:16]
    deployment = serve.deployment(
        cls, name="scorer", num_replicas=replicas,
        ray_actor_options=actor_options,
        # Above the batch size: a replica takes no more calls than this at once.
        max_ongoing_requests=max(2 * max_batch, 8),
        request_router_config=RequestRouterConfig(request_router_class=CONSISTENT_HASH),
        health_check_period_s=2.0, health_check_timeout_s=10.0,
        graceful_shutdown_timeout_s=2.0)
    return deployment.bind(*args, settings), settings
