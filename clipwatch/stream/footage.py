"""Normal footage for training and calibration: a UCSD root, a folder of clips, one clip, a video.

Every frame goes through the one preprocessing function and is held in memory as float16
(half the memory of float32; far finer than the bf16 the CPU trains in).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipwatch.errors import DatasetError, SourceError
from clipwatch.stream.preprocess import InputSpec, preprocess
from clipwatch.stream.sources import open_source
from clipwatch.stream.ucsd import find_ucsd


@dataclass(frozen=True)
class NormalClip:
    name: str
    frames: np.ndarray  # (N, S, S) float16, preprocessed


def normal_clip_paths(data: str | Path) -> list[tuple[str, Path]]:
    """(name, path) of each normal clip: a UCSD root's training clips, else the subfolders or
    videos of a folder, else the folder or video itself."""
    root = Path(data)
    if not root.exists():
        raise DatasetError(f"{root} does not exist")
    dataset = find_ucsd(root)
    if dataset is not None:
        return [(clip.name, clip.frames_dir) for clip in dataset.train]
    if root.is_dir():
        children = sorted(p for p in root.iterdir() if not p.name.startswith("."))
        subdirs = [p for p in children if p.is_dir()]
        videos = [p for p in children if p.suffix.lower() in {".avi", ".mp4", ".mkv", ".mov"}]
        if subdirs or videos:
            return [(p.name, p) for p in subdirs + videos]
    return [(root.name, root)]


def load_clip(path: Path, spec: InputSpec) -> np.ndarray:
    """All frames of one clip (folder or video), preprocessed: (N, S, S) float16."""
    with open_source(path) as source:
        frames = [preprocess(frame.image, spec).astype(np.float16) for frame in source]
    if not frames:
        raise SourceError(f"no frames in {path}")
    return np.stack(frames)


def load_normal_clips(data: str | Path, spec: InputSpec,
                      only: tuple[str, ...] | None = None,
                      exclude: tuple[str, ...] = ()) -> list[NormalClip]:
    """Load normal clips by name: all of them, or `only` those, minus `exclude`."""
    paths = normal_clip_paths(data)
    names = {name for name, _ in paths}
    unknown = [n for n in (*(only or ()), *exclude) if n not in names]
    if unknown:
        raise DatasetError(f"no normal clip named {', '.join(unknown)} in {data} "
                           f"(have {', '.join(sorted(names))})")
    chosen = [(n, p) for n, p in paths if (only is None or n in only) and n not in exclude]
    if not chosen:
        raise DatasetError(f"no normal clips left in {data} after holding out {list(exclude)}")
    return [NormalClip(name, load_clip(path, spec)) for name, path in chosen]
