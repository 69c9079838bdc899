"""Reconstructors: turn due clips (from one or several cameras) into the reconstructions of
their new frames, the only ones a score needs. numpy and ONNX Runtime only.

- `FullClips`: the reference. The whole clip through the shipped graph, every frame
  decoded; each frame is encoded once per clip it appears in (10 times at stride 1).
- `SplitClips`: the same numbers (to float rounding) from the exported parts
  (`fast_export`): each frame encoded once and cached on its scorer, the ConvLSTM stack
  over the clip's cached features, and only the new frames decoded. Optionally with the
  pixel-shuffle decoder and/or int8 encoder and decoder.
- `StatefulFrames`: a different model: the ConvLSTM state is carried from frame to frame
  instead of restarting at every clip, so each frame costs one step. Its scorers use clips of
  one frame; the state lives on the scorer and restarts with it after a gap.

All take `(scorer, clip)` pairs so one call can batch the clips of several cameras.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clipwatch.errors import ModelError
from clipwatch.model.clip_scorer import ClipScorer
from clipwatch.model.detector import Detector, DetectorOptions, make_session
from clipwatch.stream.clip_buffer import Clip

Item = tuple[ClipScorer, Clip]
VARIANTS = ("auto", "full", "split", "split-convt", "split-int8", "stateful")


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class FullClips:
    """The reference path: the shipped graph on whole clips."""

    clip_length_override = None

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.device = detector.device

    def new_frames(self, items: list[Item]) -> list[np.ndarray]:
        if not items:
            return []
        batch = np.stack([clip.frames for _, clip in items])  # (B, T, 1, S, S)
        recon = self.detector.reconstruct(batch)
        return [recon[b, list(clip.new_positions)] for b, (_, clip) in enumerate(items)]


class _Parts:
    """ONNX Runtime sessions for the parts listed in `<stem>.parts.json`."""

    def __init__(self, model_path: Path, options: DetectorOptions) -> None:
        manifest_path = Path(model_path).with_suffix(".parts.json")
        if not manifest_path.is_file():
            raise ModelError(f"{Path(model_path).name} has no fast parts ({manifest_path.name}); "
                             "make them with scripts/make_fast_parts.py")
        self.manifest = json.loads(manifest_path.read_text())
        self.folder = manifest_path.parent
        self.options = options
        self._sessions: dict[str, object] = {}
        self.device = "cpu"

    def session(self, part: str, int8: bool = False):
        key = f"{part}{'.int8' if int8 else ''}"
        if key not in self._sessions:
            names = self.manifest["int8" if int8 else "parts"]
            if part not in names:
                raise ModelError(f"no {'int8 ' if int8 else ''}{part} part for this model")
            self._sessions[key], self.device = make_session(self.folder / names[part],
                                                            self.options)
        return self._sessions[key]


class SplitClips:
    """Each frame encoded once; the clip's ConvLSTM over cached features; new frames decoded."""

    clip_length_override = None

    def __init__(self, model_path: Path, options: DetectorOptions | None = None,
                 pixel_shuffle: bool = True, int8: bool = False) -> None:
        self.options = options or DetectorOptions()
        parts = _Parts(model_path, self.options)
        self.encoder = parts.session("encoder", int8)
        self.temporal = parts.session("temporal")  # fp32 always: see quantize_parts
        self.decoder = parts.session("decoder" if pixel_shuffle else "decoder_convt",
                                     int8 and pixel_shuffle)
        self.device = parts.device

    def _run(self, session, name: str, data: np.ndarray, per_call: int) -> np.ndarray:
        outs = [session.run(None, {name: np.ascontiguousarray(data[s])})[0]
                for s in _chunks(len(data), per_call)]
        return np.concatenate(outs)

    def new_frames(self, items: list[Item]) -> list[np.ndarray]:
        if not items:
            return []
        batch = self.options.max_batch
        # Frame-wise parts take as many frames per call as `batch` whole clips hold.
        frames_per_call = batch * len(items[0][1].indices)
        # 1. Encode the frames no scorer has features for yet (each frame once, ever).
        missing: dict[tuple[int, int], tuple[ClipScorer, int, np.ndarray]] = {}
        for scorer, clip in items:
            for pos, index in enumerate(clip.indices):
                if index not in scorer.features:
                    missing.setdefault((id(scorer), index), (scorer, index, clip.frames[pos]))
        if missing:
            todo = list(missing.values())
            features = self._run(self.encoder, "frames", np.stack([f for _, _, f in todo]),
                                 frames_per_call)
            for (scorer, index, _), feature in zip(todo, features, strict=True):
                scorer.features[index] = feature
        # 2. The ConvLSTM stack over each clip's features.
        stacked = np.stack([np.stack([scorer.features[i] for i in clip.indices])
                            for scorer, clip in items])  # (B, T, C, 26, 26)
        hidden = self._run(self.temporal, "features", stacked, batch)
        # 3. Decode only the new frames.
        picks = [(b, pos) for b, (_, clip) in enumerate(items) for pos in clip.new_positions]
        frames = self._run(self.decoder, "hidden", np.stack([hidden[b, p] for b, p in picks]),
                           frames_per_call)
        out, start = [], 0
        for scorer, clip in items:
            out.append(frames[start:start + clip.new])
            start += clip.new
            # Keep only the features a later clip of this scorer can still use.
            keep = set(scorer.buffer.indices())
            for index in [i for i in scorer.features if i not in keep]:
                del scorer.features[index]
        return out


class StatefulFrames:
    """One ConvLSTM step per frame with the state carried on each scorer (clips of 1 frame)."""

    clip_length_override = 1

    def __init__(self, model_path: Path, options: DetectorOptions | None = None) -> None:
        self.options = options or DetectorOptions()
        parts = _Parts(model_path, self.options)
        self.step = parts.session("step")
        self.device = parts.device
        self.state_inputs = [i for i in self.step.get_inputs()][1:]

    def new_frames(self, items: list[Item]) -> list[np.ndarray]:
        if not items:
            return []
        # A camera's frames depend on each other through the state: each call takes at most
        # one frame per camera (rounds), while different cameras share the call.
        out: list[np.ndarray | None] = [None] * len(items)
        rounds: list[list[int]] = []
        seen: dict[int, int] = {}
        for k, (scorer, _) in enumerate(items):
            depth = seen.get(id(scorer), 0)
            seen[id(scorer)] = depth + 1
            if depth == len(rounds):
                rounds.append([])
            rounds[depth].append(k)
        for round_items in rounds:
            for s in _chunks(len(round_items), self.options.max_batch):
                keys = round_items[s]
                for k, recon in zip(keys, self._step([items[k] for k in keys]), strict=True):
                    out[k] = recon
        return out

    def _step(self, chunk: list[Item]) -> list[np.ndarray]:
        """One ConvLSTM step for distinct cameras' frames, from and into their states."""
        for scorer, _ in chunk:
            if scorer.state is None:  # a new camera, or one reset after a gap
                scorer.state = [np.zeros(tuple(i.shape[1:]), np.float32)
                                for i in self.state_inputs]
        feeds = {"frame": np.stack([clip.frames[-1] for _, clip in chunk])}
        for k, spec in enumerate(self.state_inputs):
            feeds[spec.name] = np.stack([scorer.state[k] for scorer, _ in chunk])
        recon, *states = self.step.run(None, feeds)
        for b, (scorer, _) in enumerate(chunk):
            scorer.state = [state[b] for state in states]
        return [recon[b:b + 1] for b in range(len(chunk))]


def make_reconstructor(variant: str, model_path: Path, options: DetectorOptions | None = None,
                       detector: Detector | None = None):
    """The reconstructor for a variant name (see VARIANTS)."""
    options = options or DetectorOptions()
    if variant == "auto":
        has_parts = Path(model_path).with_suffix(".parts.json").is_file()
        variant = "split" if has_parts else "full"
    if variant == "full":
        return FullClips(detector or Detector(model_path, options))
    if variant == "split":
        return SplitClips(model_path, options)
    if variant == "split-convt":
        return SplitClips(model_path, options, pixel_shuffle=False)
    if variant == "split-int8":
        return SplitClips(model_path, options, int8=True)
    if variant == "stateful":
        return StatefulFrames(model_path, options)
    raise ModelError(f"unknown model variant {variant!r} (use {', '.join(VARIANTS)})")
