"""`clipwatch bench --cluster`: clips/s of the cluster's scoring path against 1, 2 and 4
scorer replicas, and the CPU each clip costs.

It starts a local Ray cluster (on 127.0.0.1), deploys the scorers (scorer.py) and drives N
cameras through the camera workers' own `ServeReconstructor` (remote.py) from a few driver
actors: each camera has one call in flight at a time, as a live camera's inference pass
has, with the sample clip's preprocessed frames as its clips. clips/s is what all cameras
got scored in the measured seconds; CPU per clip is the machine's busy CPU time (all
processes, /proc/stat) over that time divided by the clips.

Two scorers are measured: the real model, and a stand-in that runs no model and sleeps a
GPU-like batch time per batch (said so in the output). On a machine with few cores the real
model cannot scale with replicas (they share the cores); the stand-in shows what the
orchestration does when the scorer's time is not this machine's CPU: its clips/s should
grow with replicas, and its CPU per clip is the orchestration's own cost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from clipwatch.config import ClusterConfig, Config, ModelConfig
from clipwatch.errors import ClipwatchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalingPoint:
    replicas: int
    clips_per_s: float
    stand_in: bool
    cpu_ms_per_clip: float  # machine-wide busy CPU over the run, per clip
    clips: int
    seconds: float
    failed_calls: int
    misses: int


def busy_cpu_seconds() -> float:
    """The machine's busy CPU time so far (every core, every process), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class BenchCameras:
    """A driver: the cameras of one camera worker, sending the template clips in a loop
    through the worker's own `ServeReconstructor`."""

    def __init__(self, name: str, cameras: list[str], template: list[Any], handle: Any,
                 description: dict[str, Any]) -> None:
        from clipwatch.cluster.remote import ServeReconstructor

        self.cameras = cameras
        self.template = template
        self.remote = ServeReconstructor(handle, description, session=name)
        self.count = {c: 0 for c in cameras}

    def _next(self, camera: str):
        n = self.count[camera]
        self.count[camera] = n + 1
        clip = self.template[n % len(self.template)]
        length = len(clip.indices)
        return replace(clip, camera=camera, fresh=n == 0,
                       indices=tuple(range(n, n + length)))

    def run(self, seconds: float) -> dict[str, int]:
        clips, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.remote.reconstruct([self._next(c) for c in self.cameras])
            clips += len(self.cameras)
        return {"clips": clips, "failed": sum(self.remote.failed_calls.values()),
                "misses": sum(self.remote.misses.values())}


def template_clips(model_path: Path, frames_folder: Path, clip_length: int | None,
                   count: int = 40) -> list[Any]:
    """The sample clip's first clips, as a stride-1 camera would send them."""
    from clipwatch.model.bench import load_frames
    from clipwatch.model.clip_scorer import ClipScorer, ScorerSettings
    from clipwatch.model.sidecar import read_sidecar

    sidecar = read_sidecar(model_path)
    scorer = ClipScorer("bench", ScorerSettings(
        spec=sidecar.input_spec, scoring=sidecar.scoring, calibration=sidecar.calibration,
        clip_length=clip_length))
    clips = []
    for frame in load_frames(frames_folder, count + sidecar.input_spec.clip_length):
        request = scorer.add(frame)
        if request is not None:
            clips.append(request)
    return clips[-count:]


def run_cluster_bench(model_path: Path, frames_folder: Path, cameras: int = 64,
                      replicas: Sequence[int] = (1, 2, 4), seconds: float = 10.0,
                      stand_in_batch_s: float = 0.1, max_batch: int = 16,
                      per_worker: int = 8,
                      real_model: bool = True,
                      log: Callable[[str], None] = log.info) -> dict[str, Any]:
    import ray
    from ray import serve

    from clipwatch.cluster import runtime
    from clipwatch.cluster.scorer import SCORER_APP

    config = Config(model=ModelConfig(path=model_path, threads=1),
                    cluster=ClusterConfig(database="postgresql://unused", max_batch=max_batch,
                                          cpus_per_replica=1.0))
    # The clips first: a folder that cannot give one fails before a cluster starts.
    from clipwatch.model.reconstructors import make_reconstructor

    clip_length = make_reconstructor("auto", model_path).clip_length
    template = template_clips(model_path, frames_folder, clip_length)
    if not template:
        raise ClipwatchError(f"{frames_folder} has too few frames for one clip")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.monotonic()
    # Logical CPUs for every replica and driver: the bench measures, it does not place.
    # address="local": a new cluster, even where one started with `ray start` runs here.
    ray.init(address="local", namespace="clipwatch-bench", include_dashboard=False,
             log_to_driver=False,
             _node_ip_address="127.0.0.1", num_cpus=max(replicas))
    log(f"local Ray cluster up in {time.monotonic() - started:.1f} s")
    points: list[ScalingPoint] = []
    driver_cls = ray.remote(num_cpus=0)(BenchCameras)
    try:
        for stand_in in ([True, False] if real_model else [True]):
            for count in replicas:
                handle = runtime.deploy_scorers(config, stand_in_batch_s if stand_in else None,
                                                replicas=count)
                description = handle.describe.remote().result()
                names = [f"cam{k}" for k in range(cameras)]
                groups = [names[k:k + per_worker] for k in range(0, cameras, per_worker)]
                actors = [driver_cls.remote(f"worker{n}", g, template, handle, description)
                          for n, g in enumerate(groups)]
                ray.get([a.run.remote(2.0) for a in actors])  # warm up: caches, batches
                cpu0, t0 = busy_cpu_seconds(), time.monotonic()
                results = ray.get([a.run.remote(seconds) for a in actors])
                elapsed, cpu = time.monotonic() - t0, busy_cpu_seconds() - cpu0
                clips = sum(r["clips"] for r in results)
                point = ScalingPoint(count, clips / elapsed, stand_in,
                                     1000.0 * cpu / max(clips, 1), clips, elapsed,
                                     sum(r["failed"] for r in results),
                                     sum(r["misses"] for r in results))
                points.append(point)
                log(f"{'stand-in' if stand_in else 'real model'}, {count} replica(s): "
                    f"{point.clips_per_s:.1f} clips/s, {point.cpu_ms_per_clip:.2f} CPU-ms/clip")
                for actor in actors:
                    ray.kill(actor)
                serve.delete(SCORER_APP)
        memory = cluster_memory_mb()
    finally:
        serve.shutdown()
        ray.shutdown()
    return {"cameras": cameras, "seconds": seconds, "max_batch": max_batch,
            "stand_in_batch_s": stand_in_batch_s, "cpu_count": os.cpu_count(),
            "cluster_memory_mb": memory,
            "scaling": [asdict(p) for p in points]}


# What the command line of each kind of Ray process holds (raylet, GCS, workers, agents).
RAY_PROCESS_MARKS = (b"raylet", b"gcs_server", b"ray::", b"ray/_private", b"ray/dashboard",
                     b"ray/autoscaler", b"default_worker.py")


def cluster_memory_mb() -> float:
    """Resident memory of every Ray process on this machine (raylet, GCS, workers), MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if not any(mark in cmdline for mark in RAY_PROCESS_MARKS):
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def format_scaling(report: dict[str, Any]) -> str:
    lines = [f"cluster bench: {report['cameras']} cameras, {report['seconds']:.0f} s per run, "
             f"batches of up to {report['max_batch']}, {report['cpu_count']} cores",
             f"{'scorer':<38} {'replicas':>8} {'clips/s':>9} {'CPU-ms/clip':>12} "
             f"{'failed':>7} {'misses':>7}"]
    for p in report["scaling"]:
        stand_in = f"stand-in ({report['stand_in_batch_s'] * 1000:.0f} ms per " \
                   f"{report['max_batch']} clips)"
        name = stand_in if p["stand_in"] else "real model (ONNX Runtime, this CPU)"
        lines.append(f"{name:<38} {p['replicas']:>8} {p['clips_per_s']:>9.1f} "
                     f"{p['cpu_ms_per_clip']:>12.2f} {p['failed_calls']:>7} {p['misses']:>7}")
    lines.append(f"Ray processes' resident memory at the end: {report['cluster_memory_mb']:.0f} MB")
    return "\n".join(lines)
