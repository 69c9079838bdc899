"""ONNX Runtime session settings measured on the live path (split parts, one camera, stride 1):
graph optimization level, intra-op threads, and idle threads spinning or not.

    .venv/bin/python scripts/ort_session_options.py
"""

from __future__ import annotations

import time

from clipwatch.model.bench import load_frames, stream
from clipwatch.model.detector import DetectorOptions
from clipwatch.model.reconstructors import make_reconstructor
from clipwatch.model.sidecar import read_sidecar
from clipwatch.paths import DEFAULT_MODEL, SAMPLE_CLIP


def frames_per_s(options: DetectorOptions) -> float:
    reconstructor = make_reconstructor("split", DEFAULT_MODEL, options)
    sidecar = read_sidecar(DEFAULT_MODEL)
    frames = load_frames(SAMPLE_CLIP, 100)
    stream(reconstructor, sidecar, frames[:20], 1)
    started = time.perf_counter()
    stream(reconstructor, sidecar, frames, 1)
    return len(frames) / (time.perf_counter() - started)


def main() -> None:
    print(f"{'level':<12} {'threads':>7} {'spin':>5} {'frames/s':>9}")
    for level in ("disable_all", "basic", "extended", "all"):
        fps = frames_per_s(DetectorOptions(graph_optimization=level))
        print(f"{level:<12} {'auto':>7} {'no':>5} {fps:9.1f}")
    for threads in (1, 2):
        for spin in (False, True):
            fps = frames_per_s(DetectorOptions(intra_op_threads=threads, spin=spin))
            print(f"{'all':<12} {threads:>7} {'yes' if spin else 'no':>5} {fps:9.1f}")


if __name__ == "__main__":
    main()
