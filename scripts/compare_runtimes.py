"""Clips/s of PyTorch eager vs ONNX Runtime (CPU, fp32) for one model, batch 1 and batch 8.

    python scripts/compare_runtimes.py runs/ped2/last.pt weights/ucsd_ped2.onnx

A stop-gap until `clipwatch bench` (its own issue); needs the train extra for torch.
"""

import argparse
import time

import numpy as np
import torch

from clipwatch.model.checkpoint import load_checkpoint, model_from_checkpoint
from clipwatch.model.detector import Detector, DetectorOptions


def clips_per_s(run, clips: np.ndarray, repeats: int) -> float:
    run(clips)  # warm-up: first calls allocate and pick kernels
    started = time.perf_counter()
    for _ in range(repeats):
        run(clips)
    return repeats * len(clips) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("onnx")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model, spec = model_from_checkpoint(load_checkpoint(args.checkpoint))
    detector = Detector(args.onnx, DetectorOptions(device="cpu", max_batch=8))
    rng = np.random.default_rng(0)

    def torch_run(clips):
        with torch.inference_mode():
            model(torch.from_numpy(clips))

    print(f"torch threads {torch.get_num_threads()}; ONNX Runtime {detector.providers[0]}")
    for batch in (1, 8):
        clips = rng.uniform(-1, 1, (batch, spec.clip_length, 1, spec.size, spec.size))
        clips = clips.astype(np.float32)
        t = clips_per_s(torch_run, clips, args.repeats)
        o = clips_per_s(detector.reconstruct, clips, args.repeats)
        print(f"batch {batch}: PyTorch eager {t:.2f} clips/s, ONNX Runtime {o:.2f} clips/s "
              f"({o / t:.2f}x)")


if __name__ == "__main__":
    main()
