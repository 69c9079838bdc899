"""`clipwatch bench`: every inference variant measured in one run, as one table (and JSON).

For each variant (reference ONNX Runtime graph, PyTorch eager where torch is installed, the
split parts, pixel shuffle, int8, the carried-state model): clips/s in offline batches of 8,
scored frames/s for one camera at stride 1 (each frame scored as it arrives), the per-frame
latency (arrival to score) p50/p95 in that loop, the process's peak memory while it ran, its
ratio to the naive ONNX Runtime path and to the FLOP floor of this machine (the full clip's
FLOPs at the fp32 matrix-product rate measured here), and with --auc the frame-level Ped2 AUC
(paper protocol, the model's scoring) of the scores it produced. Batching across cameras is
measured for the best exact variant. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clipwatch.model.clip_scorer import ClipScorer, FrameScore, ScorerSettings
from clipwatch.model.detector import DetectorOptions
from clipwatch.model.metrics import frame_auc
from clipwatch.model.reconstructor import Reconstructor
from clipwatch.model.reconstructors import make_reconstructor, resolve_variant
from clipwatch.model.score_source import score_frames
from clipwatch.model.scoring import paper_regularity
from clipwatch.model.sidecar import read_sidecar
from clipwatch.stream.sources import Frame, open_source
from clipwatch.stream.ucsd import find_ucsd

BATCH = 8


@dataclass
class VariantResult:
    name: str
    description: str
    exact: bool  # same scores as the reference (to float rounding), or a different model
    clips_per_s: float
    frames_per_s_stride1: float
    latency_p50_ms: float
    latency_p95_ms: float
    peak_memory_mb: float
    ratio_to_naive: float = 0.0  # frames/s at stride 1 over the naive ONNX Runtime path's
    ratio_to_flop_floor: float = 0.0  # ms per scored frame over the full clip at fp32 peak
    auc_ped2: float | None = None
    default: bool = False  # the variant `model.variant: auto` runs for this model


@dataclass
class BenchReport:
    device: str
    threads: int
    fp32_gflops: float
    flop_floor_ms: float
    clip_gflop: float
    naive_onnx_clips_per_s: float
    variants: list[VariantResult] = field(default_factory=list)
    batching: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**asdict(self), "variants": [asdict(v) for v in self.variants]}


def clip_gflop(model_path: Path) -> float:
    """GFLOPs (multiply-adds x2) of one full clip through the shipped network, from the
    weight shapes its parts manifest records."""
    import json

    manifest = json.loads(Path(model_path).with_suffix(".parts.json").read_text())
    weights = manifest["weight_shapes"]
    # Per frame: each layer's weight count times the positions it is applied at, x2 for the
    # multiply-add; transposed convolutions apply their kernels at their input positions.
    positions = {"encoder.0.weight": 55 * 55, "encoder.2.weight": 26 * 26,
                 "decoder.0.weight": 26 * 26, "decoder.2.weight": 55 * 55,
                 **{f"temporal.{i}.cell.gates.weight": 26 * 26 for i in range(3)}}
    flops = sum(2 * n * int(np.prod(weights[name])) for name, n in positions.items())
    return read_sidecar(model_path).input_spec.clip_length * flops / 1e9


def fp32_gflops(seconds: float = 1.5) -> float:
    """This machine's fp32 matrix-product rate (numpy's BLAS, all cores), best of a few."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    b = a.copy()
    a @ b  # warm-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def _reset_peak_memory() -> None:
    # Linux: writing 5 resets the peak resident set size (VmHWM); elsewhere it is the
    # process's peak so far.
    with contextlib.suppress(OSError):
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")


def _peak_memory_mb() -> float:
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def load_frames(folder: Path, limit: int | None = None) -> list[Frame]:
    with open_source(folder) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if limit and len(frames) >= limit:
                break
    return frames


def _scorer(reconstructor: Reconstructor, sidecar, camera: str = "bench") -> ClipScorer:
    """A stride-1 scorer for one stream with the model's scoring and calibration: the live
    path, shaped for what the reconstructor takes."""
    return ClipScorer(camera, ScorerSettings(
        spec=sidecar.input_spec, scoring=sidecar.scoring, calibration=sidecar.calibration,
        clip_length=reconstructor.clip_length))


def stream(reconstructor: Reconstructor, sidecar, frames: list[Frame], batch: int,
           latencies: list[float] | None = None) -> tuple[dict[int, FrameScore], int]:
    """Score `frames` at stride 1 through the live path (`score_frames`), `batch` clips per
    call; returns the scores by frame index and how many clips that took."""
    scorer = _scorer(reconstructor, sidecar)
    started: dict[int, float] = {}

    def timed(frames):
        for frame in frames:
            started[frame.index] = time.perf_counter()
            yield frame

    scores = {}
    for score in score_frames(timed(frames), scorer, reconstructor, batch):
        scores[score.index] = score
        if latencies is not None:
            latencies.append(time.perf_counter() - started.pop(score.index))
    return scores, scorer.clips_scored


def measure(name: str, description: str, exact: bool, reconstructor, sidecar,
            frames: list[Frame], auc: Callable | None) -> VariantResult:
    _reset_peak_memory()
    stream(reconstructor, sidecar, frames[:20], 1)  # warm-up: sessions allocate on first runs
    latencies: list[float] = []
    started = time.perf_counter()
    stream(reconstructor, sidecar, frames, 1, latencies)
    per_frame = len(frames) / (time.perf_counter() - started)
    started = time.perf_counter()
    _, clips = stream(reconstructor, sidecar, frames, BATCH)
    clips_per_s = clips / (time.perf_counter() - started)
    # The first clip scores 10 frames at once: steady state starts after it.
    ms = np.array(latencies[sidecar.input_spec.clip_length:]) * 1000
    return VariantResult(
        name=name, description=description, exact=exact, clips_per_s=round(clips_per_s, 2),
        frames_per_s_stride1=round(per_frame, 2),
        latency_p50_ms=round(float(np.percentile(ms, 50)), 1),
        latency_p95_ms=round(float(np.percentile(ms, 95)), 1),
        peak_memory_mb=round(_peak_memory_mb(), 0),
        auc_ped2=None if auc is None else round(auc(reconstructor), 4))


def ped2_auc(ucsd_root: Path, sidecar, limit_clips: int | None = None):
    """A function: reconstructor -> pooled paper AUC over the Ped2 test clips (stride 1) of
    the live score's error (the model's scoring, as the service computes it)."""
    dataset = find_ucsd(ucsd_root)
    if dataset is None or not dataset.test:
        raise FileNotFoundError(f"no UCSD test set in {ucsd_root}")
    clips = dataset.test[:limit_clips] if limit_clips else dataset.test
    loaded = [(c, load_frames(c.frames_dir)) for c in clips]

    def auc(reconstructor) -> float:
        scores, labels = [], []
        for clip, frames in loaded:
            by_index, _ = stream(reconstructor, sidecar, frames, BATCH)
            order = sorted(by_index)
            scores.append(paper_regularity(np.array([by_index[i].score_error for i in order])))
            labels.append(clip.labels(len(frames))[order])
        return frame_auc(np.concatenate(scores), np.concatenate(labels))

    return auc


def torch_eager(model_path: Path, threads: int):
    """PyTorch eager on whole clips, as a reconstructor (None where torch is not installed)."""
    try:
        import torch

        from clipwatch.model.fast_export import network_from_onnx
    except ImportError:
        return None
    if threads:
        torch.set_num_threads(threads)
    model = network_from_onnx(model_path)

    class Eager:
        """PyTorch eager as a Reconstructor."""

        clip_length = None
        decodes_any_position = True
        device = "cpu"

        def reconstruct(self, requests):
            batch = torch.from_numpy(np.stack([r.frames for r in requests]))
            with torch.inference_mode():
                recon = model(batch).numpy()
            return [recon[b, list(r.decode)] for b, r in enumerate(requests)]

        def reset(self, camera):
            pass

    return Eager()


VARIANT_TEXT = {
    "full": ("onnx-fp32 (naive)", True, "shipped graph, whole clip per frame"),
    "split-convt": ("split", True, "frame encoded once, ConvLSTM per clip, new frames decoded"),
    "split": ("split+pixelshuffle", True, "split, transposed convs as conv + pixel shuffle"),
    "split-int8": ("split+pixelshuffle+int8", False,
                   "split+pixelshuffle, encoder and decoder static int8 (QDQ)"),
    "staggered": ("staggered", False, "two ConvLSTM states restarted in turn: two steps per "
                                      "frame, context 10-19 frames"),
    "stateful": ("stateful", False, "ConvLSTM state carried frame to frame: one step per frame"),
}


def run_bench(model_path: Path, frames_folder: Path, options: DetectorOptions,
              ucsd_root: Path | None = None, variants: tuple[str, ...] = tuple(VARIANT_TEXT),
              n_frames: int = 120, log: Callable[[str], None] = print) -> BenchReport:
    sidecar = read_sidecar(model_path)
    frames = load_frames(frames_folder, n_frames)
    gflops = fp32_gflops()
    gflop = clip_gflop(model_path)
    auc = ped2_auc(ucsd_root, sidecar) if ucsd_root else None
    default = resolve_variant("auto", model_path)
    report = BenchReport(device="", threads=options.intra_op_threads,
                         fp32_gflops=round(gflops, 1), clip_gflop=round(gflop, 2),
                         flop_floor_ms=round(gflop / gflops * 1000, 1),
                         naive_onnx_clips_per_s=0.0)
    # Each variant is built just before it is measured and freed after, so its peak memory
    # is its own (plus the frames and what the process holds anyway).
    candidates: list[tuple[str, str, bool, Callable, Callable | None]] = []
    if "full" in variants:
        candidates.append(("pytorch-eager", "PyTorch eager, whole clip per frame", True,
                           lambda: torch_eager(model_path, options.intra_op_threads), None))
    for variant in variants:
        name, exact, text = VARIANT_TEXT[variant]
        candidates.append((name, text, exact,
                           lambda v=variant: make_reconstructor(v, model_path, options), auc))
    for name, text, exact, build, variant_auc in candidates:
        gc.collect()
        reconstructor = build()
        if reconstructor is None:
            log(f"skipping {name} (torch is not installed)")
            continue
        report.device = report.device or getattr(reconstructor, "device", "")
        log(f"measuring {name} ...")
        result = measure(name, text, exact, reconstructor, sidecar, frames, variant_auc)
        result.default = name == VARIANT_TEXT[default][0]
        report.variants.append(result)
        del reconstructor
    naive = next(v for v in report.variants if v.name.startswith("onnx-fp32"))
    report.naive_onnx_clips_per_s = naive.clips_per_s
    for v in report.variants:
        v.ratio_to_naive = round(v.frames_per_s_stride1 / naive.frames_per_s_stride1, 2)
        v.ratio_to_flop_floor = round(1000 / v.frames_per_s_stride1 / report.flop_floor_ms, 2)
    # Batching across cameras for the fastest exact variant, and the fastest of all.
    measured = [v for v in report.variants if v.name != "pytorch-eager"]
    best_exact = max((v for v in measured if v.exact), key=lambda v: v.frames_per_s_stride1)
    fastest = max(measured, key=lambda v: v.frames_per_s_stride1)
    for best in dict.fromkeys((best_exact.name, fastest.name)):
        key = next(k for k, (n, _, _) in VARIANT_TEXT.items() if n == best)
        gc.collect()
        report.batching += camera_batching(make_reconstructor(key, model_path, options),
                                           sidecar, frames, best)
    return report


def camera_batching(reconstructor, sidecar, frames: list[Frame], name: str,
                    cameras: tuple[int, ...] = (1, 2, 4)) -> list[dict]:
    """Clips/s when N cameras at stride 1 are scored together, one call per frame step."""
    rows = []
    for n in cameras:
        scorers = [_scorer(reconstructor, sidecar, f"cam{k}") for k in range(n)]
        done, started = 0, None
        for i, frame in enumerate(frames):
            if i == 20:
                started, done = time.perf_counter(), 0
            due = [(s, r) for s in scorers if (r := s.add(frame)) is not None]
            recons = reconstructor.reconstruct([r for _, r in due])
            for (scorer, request), recon in zip(due, recons, strict=True):
                scorer.score(request, recon)
                done += 1
        rows.append({"variant": name, "cameras": n,
                     "clips_per_s": round(done / (time.perf_counter() - started), 2)})
    return rows


def format_table(report: BenchReport) -> str:
    head = (f"{'variant':<26} {'exact':>5} {'clips/s':>8} {'fps@s1':>7} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'peak MB':>8} {'x naive':>8} {'x floor':>8} {'AUC':>7}")
    lines = [f"device {report.device}, threads {report.threads or 'auto'}; fp32 matmul "
             f"{report.fp32_gflops:.0f} GFLOP/s; a full clip is {report.clip_gflop:.1f} GFLOP, "
             f"so {report.flop_floor_ms:.0f} ms at that rate (the FLOP floor)", head,
             "-" * len(head)]
    for v in report.variants:
        auc = "-" if v.auc_ped2 is None else f"{v.auc_ped2:.4f}"
        shown = f"{v.name} *" if v.default else v.name
        lines.append(f"{shown:<26} {'yes' if v.exact else 'no':>5} {v.clips_per_s:>8.2f} "
                     f"{v.frames_per_s_stride1:>7.2f} {v.latency_p50_ms:>7.1f} "
                     f"{v.latency_p95_ms:>7.1f} {v.peak_memory_mb:>8.0f} "
                     f"{v.ratio_to_naive:>8.2f} {v.ratio_to_flop_floor:>8.2f} {auc:>7}")
    lines.append("* the variant `model.variant: auto` runs for this model")
    for name in dict.fromkeys(r["variant"] for r in report.batching):
        lines.append(f"batching across cameras ({name}): " + ", ".join(
            f"{r['cameras']} cam {r['clips_per_s']:.1f} clips/s"
            for r in report.batching if r["variant"] == name))
    return "\n".join(lines)
