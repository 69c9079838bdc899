"""UCSD pixel-level ground truth: the official `TestNNN_gt/` folders of .bmp masks.

The tarball keeps them beside the test clips (`Test/Test001_gt/001.bmp`, found by ucsd.py as
`UcsdClip.mask_dir`); a user of the JPEG layout points at a folder of them (`--masks`).
Mask file n (`001.bmp`, or `frame001.bmp` as in Ped2's Test006_gt) is the clip's frame n,
1-based: JPEG frame `000.jpg` is mask `001.bmp`. 0 = normal, anything else = abnormal.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from clipwatch.errors import DatasetError

_MASK_DIR_RE = re.compile(r"test(\d+)_gt", re.IGNORECASE)
_MASK_FILE_RE = re.compile(r"(\d+)$")
_MASK_SUFFIXES = {".bmp", ".png", ".tif", ".tiff"}


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return []  # unreadable: holds no masks we can use


def _mask_dirs_in(folder: Path) -> dict[int, Path]:
    found = {}
    for d in _subdirs(folder):
        match = _MASK_DIR_RE.fullmatch(d.name)
        if match:
            found[int(match.group(1))] = d
    return found


def find_mask_dirs(folder: str | os.PathLike[str], scene: str | None = None) -> dict[int, Path]:
    """Clip number -> its `TestNNN_gt` folder, under `folder`: the folder that holds them
    (or one such folder itself), or a parent of it (a scene folder, the tarball's root) up
    to three levels above. `scene` (e.g. UCSDped2) picks among several scenes. Raises
    DatasetError when there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"--masks: {folder} is not a folder")
    own = _MASK_DIR_RE.fullmatch(root.resolve().name)
    if own:
        return {int(own.group(1)): root}  # one clip's mask folder itself
    level, holders = [root], []
    for _ in range(4):
        holders = [d for d in level if _mask_dirs_in(d)]
        if holders:
            break
        level = [c for d in level for c in _subdirs(d)]
    if len(holders) > 1 and scene:
        picked = [h for h in holders if scene.lower() in str(h).lower()]
        holders = picked or holders
    if not holders:
        raise DatasetError(f"--masks: no TestNNN_gt mask folders in {folder}")
    if len(holders) > 1:
        raise DatasetError(f"--masks: several folders of masks under {folder} "
                           f"({', '.join(str(h) for h in holders)}): give one")
    return _mask_dirs_in(holders[0])


def mask_files(mask_dir: Path) -> list[Path]:
    """The mask files of one clip in frame order (by the number their name ends with)."""
    numbered = []
    for path in mask_dir.iterdir():
        match = _MASK_FILE_RE.search(path.stem)
        if path.suffix.lower() in _MASK_SUFFIXES and match and not path.name.startswith("."):
            numbered.append((int(match.group(1)), path))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DatasetError(f"masks in {mask_dir} are not numbered 1..N"
                           + (f" (found {numbers[0]}..{numbers[-1]})" if numbers else ""))
    return [p for _, p in numbered]


def read_masks(mask_dir: Path, size: int) -> np.ndarray:
    """(N, size, size) bool: each mask resized (nearest neighbour) to the model's input."""
    masks = []
    for path in mask_files(mask_dir):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(f"cannot read mask {path}")
        masks.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST) > 0)
    return np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool)
