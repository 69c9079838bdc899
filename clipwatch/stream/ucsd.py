"""The UCSD Anomaly Dataset (Mahadevan et al., CVPR 2010) in the two layouts users have.

- official (the tarball): `UCSD_Anomaly_Dataset.v1p2/UCSDped1|UCSDped2/` or a scene folder
  directly, with `Train/Train001/001.tif`, `Test/Test001/001.tif`, frame-level ground truth in
  `Test/UCSDped2.m` and pixel masks in `Test/TestNNN_gt/` for some test clips;
- jpeg (the "Future Frame Prediction" code's): `ucsd_ped2/training/frames/01/000.jpg`,
  `testing/frames/01/...`, ground truth as a `.m` file (official form) or a `.mat` file (`gt`:
  one 2xK [start; end] array per test clip) in the root.

This module owns finding clips and their frame-level ground truth; it never reads frames
(that is `sources.FolderSource`). Intervals are 1-based and inclusive, as in the dataset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from clipwatch.errors import DatasetError

Interval = tuple[int, int]
Intervals = tuple[Interval, ...]

_OFFICIAL_CLIP_RE = re.compile(r"(train|test)(\d+)", re.IGNORECASE)
_JPEG_CLIP_RE = re.compile(r"\d+")
_SCENE_RE = re.compile(r"ucsdped\d+", re.IGNORECASE)
# One official entry: `TestVideoFile{end+1}.gt_frame = [61:180];` (the brackets may hold
# several ranges and may span lines).
_GT_ENTRY_RE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")
_GT_TOKEN_RE = re.compile(r"(\d+)(?::(\d+))?")


@dataclass(frozen=True)
class UcsdClip:
    """One clip: its frame folder and, for test clips with ground truth, abnormal intervals."""

    name: str
    frames_dir: Path
    abnormal_intervals: Intervals | None  # 1-based inclusive; None: training or no truth
    mask_dir: Path | None = None  # official TestNNN_gt/ pixel masks, where shipped

    def labels(self, n_frames: int) -> np.ndarray | None:
        """Per-frame labels (True = abnormal), index 0 = frame 1; None without ground truth."""
        if n_frames < 0:
            raise ValueError(f"n_frames must be 0 or more, got {n_frames}")
        if self.abnormal_intervals is None:
            return None
        labels = np.zeros(n_frames, dtype=bool)
        for start, end in self.abnormal_intervals:
            labels[start - 1 : min(end, n_frames)] = True  # slicing clips past n_frames
        return labels


@dataclass(frozen=True)
class UcsdDataset:
    """One UCSD scene: `root` holds its train and test clips (Train/Test or training/testing)."""

    root: Path
    layout: Literal["official", "jpeg"]
    scene: str
    train: tuple[UcsdClip, ...]
    test: tuple[UcsdClip, ...]


# --- ground truth files ---------------------------------------------------------------------


def parse_ground_truth_m(path: str | os.PathLike[str]) -> list[Intervals]:
    """The `gt_frame` entries of an official `.m` ground-truth file, in file order."""
    path = Path(path)
    try:
        # errors="replace": a binary file given by mistake should fail as "no entries", below,
        # not as a UnicodeDecodeError traceback.
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read ground truth {path}: {exc.strerror or exc}") from None
    # Drop MATLAB comments line by line, keeping the line breaks for error line numbers.
    text = "\n".join(line.split("%", 1)[0] for line in text.splitlines())
    entries: list[Intervals] = []
    for hit in re.finditer(r"gt_frame", text):
        line_no = text.count("\n", 0, hit.start()) + 1
        match = _GT_ENTRY_RE.match(text, hit.start())
        if match is None:
            raise DatasetError(
                f"malformed ground truth {path} line {line_no}: expected gt_frame = [a:b, ...]"
            )
        entries.append(_parse_ranges(match.group(1), f"{path} line {line_no}"))
    if not entries:
        raise DatasetError(f"malformed ground truth {path}: no gt_frame entries")
    return entries


def _parse_ranges(body: str, where: str) -> Intervals:
    intervals = []
    for token in re.split(r"[,\s]+", body.strip()):
        if not token:
            continue  # `gt_frame = [];`: a test clip without abnormal frames
        match = _GT_TOKEN_RE.fullmatch(token)
        if match is None:
            raise DatasetError(f"malformed ground truth {where}: cannot read {token!r}")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else start
        intervals.append(_checked_interval(start, end, where))
    return tuple(intervals)


def _checked_interval(start: int, end: int, where: str) -> Interval:
    if start < 1 or end < start:
        raise DatasetError(
            f"malformed ground truth {where}: interval {start}:{end} "
            "(frames are 1-based, start <= end)"
        )
    return start, end


def parse_ground_truth_mat(path: str | os.PathLike[str]) -> list[Intervals]:
    """The per-clip intervals of a `.mat` ground-truth file in the Future Frame Prediction
    form: variable `gt`, a cell array with one 2xK [start; end] array per test clip."""
    import scipy.io  # here, not at the top: only this reader needs scipy

    path = Path(path)
    try:
        data = scipy.io.loadmat(str(path))
    except NotImplementedError:  # what scipy raises for MATLAB v7.3 (HDF5) files
        raise DatasetError(
            f"cannot read ground truth {path}: MATLAB v7.3 file, save it with -v7"
        ) from None
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as exc:
        raise DatasetError(f"cannot read ground truth {path}: {exc}") from None
    names = [k for k in data if not k.startswith("__")]
    if "gt" in data:
        cells = data["gt"]
    elif len(names) == 1:
        cells = data[names[0]]  # a lone variable under another name is still unambiguous
    else:
        raise DatasetError(f"malformed ground truth {path}: no variable 'gt' (has {names})")
    if not isinstance(cells, np.ndarray) or cells.dtype != object:
        raise DatasetError(
            f"malformed ground truth {path}: 'gt' should be a cell array, one entry per clip"
        )
    return [
        _mat_intervals(entry, f"{path} entry {k}") for k, entry in enumerate(cells.ravel(), 1)
    ]


def _mat_intervals(entry: object, where: str) -> Intervals:
    try:
        arr = np.asarray(entry, dtype=float)
    except (TypeError, ValueError):
        raise DatasetError(f"malformed ground truth {where}: not a numeric array") from None
    if arr.size == 0:
        return ()
    if arr.ndim == 2 and arr.shape[0] == 2:
        pairs = arr.T  # the form the FFP code writes: row 0 starts, row 1 ends
    elif arr.size == 2:
        pairs = arr.reshape(1, 2)  # a single [start, end], however it was shaped
    elif arr.ndim == 2 and arr.shape[1] == 2:
        pairs = arr  # Kx2, one interval per row
    else:
        raise DatasetError(
            f"malformed ground truth {where}: shape {arr.shape}, expected 2xK [start; end]"
        )
    if not np.all(np.isfinite(pairs)) or not np.all(pairs == np.round(pairs)):
        raise DatasetError(f"malformed ground truth {where}: frame numbers must be integers")
    return tuple(_checked_interval(int(s), int(e), where) for s, e in pairs)


# --- finding datasets -----------------------------------------------------------------------


def find_ucsd(root: str | os.PathLike[str], scene: str | None = None) -> UcsdDataset | None:
    """The UCSD scene at `root` (either layout), or None if `root` is not a UCSD root.

    `scene` (UCSDped1, UCSDped2, or ped1/ped2) picks a scene from an official root that holds
    both. Ground-truth entries map by clip number (Test003, folder 03 -> entry 3), so a copy
    with only some of the clips still gets the right intervals.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    scene_dirs = [d for d in _subdirs(root) if _SCENE_RE.fullmatch(d.name) and _is_official(d)]
    if scene_dirs:
        return _load_official(_pick_scene(root, scene_dirs, scene))
    if _is_official(root):
        return _load_official(root)
    if _jpeg_clip_dirs(root, "training") or _jpeg_clip_dirs(root, "testing"):
        return _load_jpeg(root)
    return None


def ground_truth_for_folder(frames_dir: str | os.PathLike[str]) -> UcsdClip | None:
    """The clip whose frames are in `frames_dir`, found by walking up (at most 4 levels) to
    its dataset root; None if the folder is not a clip of a UCSD dataset."""
    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir():
        return None
    # Walk up both the path as written (made absolute) and the resolved one: a symlink to a
    # clip has its dataset above its target, a dataset of symlinked clips above the link.
    target = frames_dir.resolve()
    starts = dict.fromkeys([Path(os.path.abspath(frames_dir)), target])
    for start in starts:
        for root in list(start.parents)[:4]:
            dataset = _find_nearest(root)
            if dataset is None:
                continue
            for clip in dataset.train + dataset.test:
                if clip.frames_dir.resolve() == target:
                    return clip
            break  # the nearest dataset above does not list this folder
    return None


def _find_nearest(root: Path) -> UcsdDataset | None:
    # Walking up from a clip reaches its scene folder before a two-scene official root, so
    # only a root that is itself ambiguous is skipped here rather than reported.
    if not _is_official(root) and not (
        _jpeg_clip_dirs(root, "training") or _jpeg_clip_dirs(root, "testing")
    ):
        return None
    return find_ucsd(root)


def _subdirs(folder: Path) -> list[Path]:
    # Dotfolders are skipped: macOS copies of the tarball carry `._Test001` and the like.
    try:
        return [d for d in folder.iterdir() if not d.name.startswith(".") and d.is_dir()]
    except OSError:
        return []


def _child(folder: Path, name: str) -> Path | None:
    """`folder/name`, matched case-insensitively (Train vs train across copies)."""
    exact = folder / name
    if exact.is_dir():
        return exact
    return next((d for d in _subdirs(folder) if d.name.lower() == name.lower()), None)


def _official_clip_dirs(scene_dir: Path, part: str) -> list[tuple[int, Path]]:
    part_dir = _child(scene_dir, part)
    if part_dir is None:
        return []
    clips = []
    for d in _subdirs(part_dir):
        # fullmatch keeps `Test004_gt` (pixel masks) out of the clip list.
        match = _OFFICIAL_CLIP_RE.fullmatch(d.name)
        if match and match.group(1).lower() == part.lower():
            clips.append((int(match.group(2)), d))
    return sorted(clips, key=lambda c: c[0])


def _is_official(folder: Path) -> bool:
    return bool(_official_clip_dirs(folder, "Train") or _official_clip_dirs(folder, "Test"))


def _jpeg_clip_dirs(root: Path, part: str) -> list[tuple[int, Path]]:
    part_dir = _child(root, part)
    frames = _child(part_dir, "frames") if part_dir else None
    if frames is None:
        return []
    clips = [(int(d.name), d) for d in _subdirs(frames) if _JPEG_CLIP_RE.fullmatch(d.name)]
    return sorted(clips, key=lambda c: c[0])


def _pick_scene(root: Path, scene_dirs: list[Path], scene: str | None) -> Path:
    if scene is None:
        if len(scene_dirs) == 1:
            return scene_dirs[0]
        names = ", ".join(sorted(d.name for d in scene_dirs))
        raise DatasetError(
            f"{root} holds several UCSD scenes ({names}): give the scene folder, "
            f"e.g. {root / scene_dirs[-1].name}"
        )
    wanted = scene.lower()
    for d in scene_dirs:
        if d.name.lower() in (wanted, "ucsd" + wanted):
            return d
    names = ", ".join(sorted(d.name for d in scene_dirs))
    raise DatasetError(f"{root} has no UCSD scene {scene!r} (has {names})")


def _load_official(scene_dir: Path) -> UcsdDataset:
    test_dir = _child(scene_dir, "Test")
    gt_file = _official_gt_file(scene_dir, test_dir) if test_dir else None
    entries = parse_ground_truth_m(gt_file) if gt_file else None
    train = tuple(UcsdClip(d.name, d, None) for _, d in _official_clip_dirs(scene_dir, "Train"))
    test = []
    for number, d in _official_clip_dirs(scene_dir, "Test"):
        mask_dir = d.with_name(d.name + "_gt")
        test.append(
            UcsdClip(d.name, d, _entry(entries, number), mask_dir if mask_dir.is_dir() else None)
        )
    return UcsdDataset(scene_dir, "official", _folder_name(scene_dir), train, tuple(test))


def _official_gt_file(scene_dir: Path, test_dir: Path) -> Path | None:
    named = test_dir / f"{_folder_name(scene_dir)}.m"
    if named.is_file():
        return named
    return _single_gt_file(test_dir, [test_dir.glob("*.m")])


def _load_jpeg(root: Path) -> UcsdDataset:
    gt_file = _single_gt_file(root, [root.glob("*.m")]) or _single_gt_file(
        root, [root.glob("*.mat")]
    )
    entries = None
    if gt_file is not None:
        is_mat = gt_file.suffix.lower() == ".mat"
        entries = parse_ground_truth_mat(gt_file) if is_mat else parse_ground_truth_m(gt_file)
    train = tuple(UcsdClip(d.name, d, None) for _, d in _jpeg_clip_dirs(root, "training"))
    test = tuple(
        UcsdClip(d.name, d, _entry(entries, number))
        for number, d in _jpeg_clip_dirs(root, "testing")
    )
    return UcsdDataset(root, "jpeg", _folder_name(root), train, test)


def _single_gt_file(folder: Path, globs: list[Iterable[Path]]) -> Path | None:
    files = sorted(
        {p for g in globs for p in g if not p.name.startswith(".") and p.is_file()}
    )
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        # Guessing between two truths would silently score against the wrong one.
        raise DatasetError(f"{folder} has several ground-truth files ({names}): keep one")
    return files[0] if files else None


def _entry(entries: list[Intervals] | None, number: int) -> Intervals | None:
    if entries is None or not 1 <= number <= len(entries):
        return None
    return entries[number - 1]


def _folder_name(folder: Path) -> str:
    return folder.name or folder.resolve().name  # Path(".").name is ""
