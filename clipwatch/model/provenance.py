"""Where a model came from: the code's git commit and the machine, for checkpoints and sidecars."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def git_commit() -> str | None:
    """The commit of the running code, when it runs from a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def hardware() -> str:
    """CPU model and core count (platform.processor() is empty on Linux), plus a CUDA GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    described = f"{cpu}, {os.cpu_count()} logical cores"
    if torch.cuda.is_available():
        described += f", {torch.cuda.get_device_name(0)}"
    return described
