"""Where the bundled model and sample live: the repository's `weights/` and `samples/`."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = Path(os.environ.get("CLIPWATCH_WEIGHTS", REPO_ROOT / "weights"))
DEFAULT_MODEL = WEIGHTS_DIR / "ucsd_ped2.onnx"
SAMPLE_CLIP = REPO_ROOT / "samples" / "ucsd_ped2" / "testing" / "frames" / "01"
