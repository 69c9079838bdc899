"""Export the fast parts of a shipped model (encoder, temporal, decoders, stateful step, int8
copies) beside it, checked against the full network on real normal frames.

    .venv/bin/python scripts/make_fast_parts.py weights/ucsd_ped2.onnx ../shared/data/ucsd_ped2
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from clipwatch.model.fast_export import export_parts, quantize_parts, write_manifest
from clipwatch.model.sidecar import read_sidecar
from clipwatch.model.variants import AUTO_VARIANTS
from clipwatch.stream.footage import load_normal_clips


def windows(clips, length: int, per_clip: int, rng: np.random.Generator) -> np.ndarray:
    """`per_clip` random windows of `length` consecutive frames from each clip: (B,T,1,S,S)."""
    out = []
    for clip in clips:
        for start in rng.choice(len(clip.frames) - length, per_clip, replace=False):
            out.append(clip.frames[start:start + length].astype(np.float32))
    return np.stack(out)[:, :, None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("normal_data", help="UCSD root (its training clips are normal)")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--auto", choices=AUTO_VARIANTS, default="split",
                        help="the variant model.variant: auto runs this model with")
    args = parser.parse_args()
    sidecar = read_sidecar(args.model)
    spec = sidecar.input_spec
    held_out = tuple(sidecar.provenance.get("held_out_clips") or ())
    rng = np.random.default_rng(0)
    # Parity on held-out normal clips; int8 calibration on the clips the model trained on.
    normal = load_normal_clips(args.normal_data, spec, only=held_out or None)
    check = windows(normal, spec.clip_length, 2, rng)
    diffs = export_parts(args.model, check)
    print("parts vs the full network, max abs difference:",
          ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    int8 = []
    if not args.no_int8:
        train = load_normal_clips(args.normal_data, spec, exclude=held_out)
        int8 = quantize_parts(args.model, windows(train, spec.clip_length, 2, rng))
        print("int8:", ", ".join(p.name for p in int8))
    print("manifest:", write_manifest(args.model, diffs, int8, args.auto))
    return 0


if __name__ == "__main__":
    sys.exit(main())
