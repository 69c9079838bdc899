"""Reconstructors (see reconstructor.py): due clips of one or several cameras in, the
reconstructions of the positions they ask for out. numpy and ONNX Runtime only.

- `FullClips`: the reference. The whole clip through the shipped graph, every frame
  decoded; each frame is encoded once per clip it appears in (10 times at stride 1).
- `SplitClips`: the same numbers (to float rounding) from the exported parts
  (`fast_export`): each frame encoded once and cached per camera, the ConvLSTM stack over
  the clip's cached features, and only the asked-for frames decoded. Optionally with the
  pixel-shuffle decoder and/or int8 encoder and decoder.
- `StatefulFrames`: a different model: the ConvLSTM state is carried from frame to frame
  instead of restarting at every clip, so each frame costs one step. It takes clips of one
  frame; the state is kept per camera and restarts after `reset(camera)`.
- `StaggeredStates`: close to the clip model at a fraction of its cost. Each camera keeps
  two ConvLSTM states restarted in turn every 20 frames, 10 apart; each frame is encoded
  once, both states step on it, and it is decoded from the state that has seen 10 to 19
  frames, so its context is a clip's 10 frames or a little more (every 10th frame exactly
  the clip model's). Two steps per frame instead of ten.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipwatch.errors import ModelError
from clipwatch.model.clip_scorer import ScorerSettings
from clipwatch.model.detector import Detector, DetectorOptions, make_session
from clipwatch.model.reconstructor import ClipRequest, Reconstructor, fresh_segments
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration, read_sidecar
from clipwatch.model.variants import AUTO_VARIANTS, VARIANTS


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class FullClips:
    """The reference path: the shipped graph on whole clips."""

    clip_length = None
    decodes_any_position = True

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.device = detector.device

    def reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        batch = np.stack([r.frames for r in requests])  # (B, T, 1, S, S)
        recon = self.detector.reconstruct(batch)
        return [recon[b, list(r.decode)] for b, r in enumerate(requests)]

    def reset(self, camera: str) -> None:
        pass  # nothing is cached between clips


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


class _PerCameraCaches:
    """Reconstructors with per-camera caches: they restart a camera's caches at its fresh
    requests, cutting a call where a camera restarts in the middle of it."""

    def reset(self, camera: str) -> None:
        raise NotImplementedError

    def _reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        raise NotImplementedError

    def reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for segment in fresh_segments(requests):
            for r in segment:
                if r.fresh:
                    self.reset(r.camera)
            out.extend(self._reconstruct(segment))
        return out


class SplitClips(_PerCameraCaches):
    """Each frame encoded once; the clip's ConvLSTM over cached features; asked-for frames
    decoded."""

    clip_length = None
    decodes_any_position = True

    def __init__(self, model_path: Path, options: DetectorOptions | None = None,
                 pixel_shuffle: bool = True, int8: bool = False) -> None:
        self.options = options or DetectorOptions()
        parts = _Parts(model_path, self.options)
        self.encoder = parts.session("encoder", int8)
        self.temporal = parts.session("temporal")  # fp32 always: see quantize_parts
        self.decoder = parts.session("decoder" if pixel_shuffle else "decoder_convt",
                                     int8 and pixel_shuffle)
        self.device = parts.device
        # camera -> frame index -> encoded features (C, 26, 26); bounded by one clip's
        # frames per camera (older ones are dropped once no later clip can use them).
        self.features: dict[str, dict[int, np.ndarray]] = {}

    def reset(self, camera: str) -> None:
        self.features.pop(camera, None)

    def _run(self, session, name: str, data: np.ndarray, per_call: int) -> np.ndarray:
        outs = [session.run(None, {name: np.ascontiguousarray(data[s])})[0]
                for s in _chunks(len(data), per_call)]
        return np.concatenate(outs)

    def _reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        batch = self.options.max_batch
        # Frame-wise parts take as many frames per call as `batch` whole clips hold.
        frames_per_call = batch * len(requests[0].indices)
        # 1. Encode the frames no earlier request of their camera brought (each frame once).
        missing: dict[tuple[str, int], np.ndarray] = {}
        for r in requests:
            cached = self.features.setdefault(r.camera, {})
            for pos, index in enumerate(r.indices):
                if index not in cached:
                    missing.setdefault((r.camera, index), r.frames[pos])
        if missing:
            features = self._run(self.encoder, "frames", np.stack(list(missing.values())),
                                 frames_per_call)
            for (camera, index), feature in zip(missing, features, strict=True):
                self.features[camera][index] = feature
        # 2. The ConvLSTM stack over each clip's features.
        stacked = np.stack([np.stack([self.features[r.camera][i] for i in r.indices])
                            for r in requests])  # (B, T, C, 26, 26)
        hidden = self._run(self.temporal, "features", stacked, batch)
        # 3. Decode only the asked-for positions.
        picks = [(b, pos) for b, r in enumerate(requests) for pos in r.decode]
        frames = self._run(self.decoder, "hidden", np.stack([hidden[b, p] for b, p in picks]),
                           frames_per_call)
        out, start = [], 0
        for r in requests:
            out.append(frames[start:start + len(r.decode)])
            start += len(r.decode)
        # Keep only the features a later clip can still use: clips of a camera start in
        # order, so nothing before the newest clip's first frame is needed again.
        first = {}
        for r in requests:
            first[r.camera] = max(first.get(r.camera, r.indices[0]), r.indices[0])
        for camera, oldest in first.items():
            cached = self.features[camera]
            for index in [i for i in cached if i < oldest]:
                del cached[index]
        return out


class StatefulFrames(_PerCameraCaches):
    """One ConvLSTM step per frame with the state carried per camera (clips of 1 frame)."""

    clip_length = 1
    decodes_any_position = False  # a clip of one frame: its frame is the new one

    def __init__(self, model_path: Path, options: DetectorOptions | None = None) -> None:
        self.options = options or DetectorOptions()
        parts = _Parts(model_path, self.options)
        self.step = parts.session("step")
        self.device = parts.device
        self.state_inputs = list(self.step.get_inputs())[1:]
        self.states: dict[str, list[np.ndarray]] = {}  # camera -> its carried state

    def reset(self, camera: str) -> None:
        self.states.pop(camera, None)

    def _reconstruct(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        # A camera's frames depend on each other through the state: each call takes at most
        # one frame per camera (rounds), while different cameras share the call.
        out: list[np.ndarray | None] = [None] * len(requests)
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for k, r in enumerate(requests):
            depth = seen.get(r.camera, 0)
            seen[r.camera] = depth + 1
            if depth == len(rounds):
                rounds.append([])
            rounds[depth].append(k)
        for round_items in rounds:
            for s in _chunks(len(round_items), self.options.max_batch):
                keys = round_items[s]
                for k, recon in zip(keys, self._step([requests[k] for k in keys]),
                                    strict=True):
                    out[k] = recon
        return out

    def _step(self, chunk: list[ClipRequest]) -> list[np.ndarray]:
        """One ConvLSTM step for distinct cameras' frames, from and into their states."""
        for r in chunk:
            if r.camera not in self.states:  # a new camera, or one reset after a gap
                self.states[r.camera] = [np.zeros(tuple(i.shape[1:]), np.float32)
                                         for i in self.state_inputs]
        feeds = {"frame": np.stack([r.frames[-1] for r in chunk])}
        for k, spec in enumerate(self.state_inputs):
            feeds[spec.name] = np.stack([self.states[r.camera][k] for r in chunk])
        recon, *states = self.step.run(None, feeds)
        for b, r in enumerate(chunk):
            self.states[r.camera] = [state[b] for state in states]
        return [recon[b:b + 1] for b in range(len(chunk))]


class StaggeredStates(StatefulFrames):
    """`states` ConvLSTM states per camera restarted in turn (see the module docstring)."""

    def __init__(self, model_path: Path, options: DetectorOptions | None = None,
                 window: int | None = None, states: int = 2) -> None:
        self.options = options or DetectorOptions()
        parts = _Parts(model_path, self.options)
        self.encoder = parts.session("encoder")
        self.cell = parts.session("cell")
        self.decoder = parts.session("decoder")
        self.device = parts.device
        self.state_inputs = list(self.cell.get_inputs())[1:]
        self.window = window or read_sidecar(Path(model_path)).input_spec.clip_length
        self.count = states
        # Restarted every `period` frames, `period / count` apart: some state has always
        # seen between `window` and `window + period / count - 1` frames.
        self.period = -(-self.window * states // (states - 1)) if states > 1 else 0
        self.offsets = [k * self.period // states for k in range(states)]
        self.states: dict[str, list[np.ndarray]] = {}  # camera -> states, (count, C, 26, 26)
        self.seen: dict[str, int] = {}  # camera -> frames stepped since its reset

    def reset(self, camera: str) -> None:
        self.states.pop(camera, None)
        self.seen.pop(camera, None)

    def histories(self, seen: int) -> list[int]:
        """Frames each state has seen once frame number `seen` (0-based) is stepped."""
        return [(seen - o) % self.period + 1 if seen >= o else seen + 1 for o in self.offsets]

    def chosen(self, seen: int) -> int:
        """The state a frame is decoded from: the shortest context of at least `window`
        frames (the longest there is before that: warm-up frames, which get no verdict)."""
        history = self.histories(seen)
        full = [k for k, h in enumerate(history) if h >= self.window]
        return min(full, key=lambda k: history[k]) if full else int(np.argmax(history))

    def _step(self, chunk: list[ClipRequest]) -> list[np.ndarray]:
        """Encode distinct cameras' frames once, step every state of each, decode one."""
        n = self.count
        for r in chunk:
            if r.camera not in self.states:  # a new camera, or one reset after a gap
                self.states[r.camera] = [np.zeros((n, *i.shape[1:]), np.float32)
                                         for i in self.state_inputs]
                self.seen[r.camera] = 0
            seen = self.seen[r.camera]
            for k, offset in enumerate(self.offsets):
                if seen >= offset and (seen - offset) % self.period == 0:
                    for state in self.states[r.camera]:
                        state[k] = 0.0  # this state restarts with this frame
        features = self.encoder.run(None, {"frames": np.stack([r.frames[-1] for r in chunk])})[0]
        feeds = {"features": np.repeat(features, n, axis=0)}  # (cameras * n, C, 26, 26)
        for k, spec in enumerate(self.state_inputs):
            feeds[spec.name] = np.concatenate([self.states[r.camera][k] for r in chunk])
        hidden, *states = self.cell.run(None, feeds)
        picks = []
        for b, r in enumerate(chunk):
            self.states[r.camera] = [state[b * n:(b + 1) * n] for state in states]
            picks.append(b * n + self.chosen(self.seen[r.camera]))
            self.seen[r.camera] += 1
        frames = self.decoder.run(None, {"hidden": hidden[picks]})[0]  # (cameras, 1, S, S)
        return [frames[b:b + 1] for b in range(len(chunk))]


def resolve_variant(variant: str, model_path: Path) -> str:
    """'auto' -> the variant it runs for this model: the one its parts manifest names
    (split for a manifest that names none), full where there are no parts."""
    if variant != "auto":
        return variant
    manifest = Path(model_path).with_suffix(".parts.json")
    if not manifest.is_file():
        return "full"
    try:
        auto = json.loads(manifest.read_text()).get("auto", "split")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ModelError(f"{manifest.name} is not a readable parts manifest ({exc})") from None
    if auto not in AUTO_VARIANTS:
        raise ModelError(f"{manifest.name} names an unknown auto variant {auto!r}")
    return auto


def make_reconstructor(variant: str, model_path: Path, options: DetectorOptions | None = None,
                       detector: Detector | None = None) -> Reconstructor:
    """The reconstructor for a variant name (see variants.py)."""
    options = options or DetectorOptions()
    resolved = resolve_variant(variant, model_path)
    if resolved == "full":
        return FullClips(detector or Detector(model_path, options))
    if resolved == "split":
        return SplitClips(model_path, options)
    if resolved == "split-convt":
        return SplitClips(model_path, options, pixel_shuffle=False)
    if resolved == "split-int8":
        return SplitClips(model_path, options, int8=True)
    if resolved == "stateful":
        return StatefulFrames(model_path, options)
    if resolved == "staggered":
        return StaggeredStates(model_path, options)
    raise ModelError(f"unknown model variant {variant!r} (use {', '.join(VARIANTS)})")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score: its checked graph and sidecar, and the reconstructor of the
    variant that runs it (the service, replay, evaluate, calibrate and bench all load it
    this way)."""

    detector: Detector  # path, sidecar (input spec, scoring, calibration), options
    reconstructor: Reconstructor
    variant: str  # as resolved: 'auto' becomes the variant it runs

    @property
    def sidecar(self):
        return self.detector.sidecar

    def settings(self, stride: int, calibration: Calibration | None,
                 baseline_frames: int | None = None,
                 scoring: ScoringOptions | None = None) -> ScorerSettings:
        """How a source is scored with this model: its scoring unless told otherwise, and
        the live score's `calibration` (None: no verdicts, or a learned baseline)."""
        sidecar = self.sidecar
        own = sidecar.calibration
        return ScorerSettings(
            spec=sidecar.input_spec, scoring=scoring or sidecar.scoring, calibration=calibration,
            stride=stride, clip_length=self.reconstructor.clip_length,
            baseline_frames=baseline_frames,
            false_alarm_rate=own.false_alarm_rate if own else 0.01)


def load_model(model_path: str | Path, options: DetectorOptions | None = None,
               variant: str = "auto") -> LoadedModel:
    """Load a model (sidecar checked against its graph) and its variant's reconstructor."""
    options = options or DetectorOptions()
    if variant not in VARIANTS:
        raise ModelError(f"unknown model variant {variant!r} (use {', '.join(VARIANTS)})")
    detector = Detector(model_path, options)
    resolved = resolve_variant(variant, detector.path)
    return LoadedModel(detector, make_reconstructor(resolved, detector.path, options, detector),
                       resolved)
