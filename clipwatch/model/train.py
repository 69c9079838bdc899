"""Training the autoencoder on normal footage only, on the CPU (bf16 autocast) or CUDA.

Clips are sampled at random from the normal clips held in memory, with temporal
augmentation (frame strides 1, 2, 3 as in Chong & Tay) and random window offsets. The run
checkpoints every few minutes, and `resume` continues exactly where it stopped: model,
optimizer, step and both random generators are in the checkpoint.

Pseudo-anomalies (Astrid et al. 2021, "Learning Not to Reconstruct Anomalies"): a share of
each batch is drawn with skipped frames (strides 2-5), which look like Ped2's fast movers,
and the model is taught to reconstruct the clip at normal speed from the same first frame
instead of the fast clip it sees. A run can start from another model's weights (`init`: a
checkpoint or an exported .onnx) to fine-tune it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from clipwatch import __version__
from clipwatch.errors import ClipwatchError
from clipwatch.model.checkpoint import load_checkpoint, save_checkpoint
from clipwatch.model.network import NetworkArgs, SpatiotemporalAutoencoder
from clipwatch.model.provenance import git_commit, hardware
from clipwatch.stream.footage import load_normal_clips
from clipwatch.stream.preprocess import InputSpec

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One training run's settings; stored in its checkpoints."""

    data: str
    steps: int = 1000
    batch_size: int = 4
    lr: float = 5e-4
    # "constant", or "cosine": decay from lr to lr/10 over `steps` (a long run's last steps
    # at a low rate settle the weights; the rate is a function of the step, so resume is exact).
    lr_schedule: str = "constant"
    frame_strides: tuple[int, ...] = (1, 2, 3)
    # Clips per batch drawn with skipped frames and trained towards their stride-1 clip.
    pseudo_anomalies: int = 0
    pseudo_strides: tuple[int, ...] = (2, 3, 4, 5)
    # Share of pseudo-anomalies made local: only a box around moving content is fast, the
    # rest of the clip plays at normal speed (one fast mover among normal walkers).
    pseudo_box_share: float = 0.0
    init: str | None = None  # start from these weights (checkpoint or .onnx), not at random
    snapshot_every: int = 0  # also keep step_NNNNNN.pt every this many steps (0: never)
    holdout: tuple[str, ...] = ()  # normal clips kept out of training, for calibration
    seed: int = 0
    checkpoint_every_s: float = 300.0
    bf16: bool = True
    input_spec: InputSpec = field(default_factory=InputSpec)


class ClipSampler:
    """Random training clips (B, T, 1, S, S) drawn from whole normal clips held in memory."""

    def __init__(self, videos: list[np.ndarray], clip_length: int, strides: tuple[int, ...],
                 rng: np.random.Generator, pseudo_strides: tuple[int, ...] = (2, 3, 4, 5),
                 box_share: float = 0.0) -> None:
        self.videos = videos
        self.clip_length = clip_length
        self.strides = strides
        self.pseudo_strides = pseudo_strides
        self.box_share = box_share
        self.rng = rng
        usable = [len(v) >= clip_length for v in videos]
        if not any(usable):
            raise ClipwatchError(f"training needs a clip of at least {clip_length} frames")
        # Longer clips are sampled more often, so every frame is about equally likely.
        lengths = np.array([len(v) for v in videos], dtype=np.float64) * usable
        self.weights = lengths / lengths.sum()

    def sample(self, batch_size: int, pseudo: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), each (B, T, 1, S, S). The last `pseudo` clips are pseudo-anomalies:
        skipped frames in, the same start at stride 1 as the target; the others are their
        own targets."""
        inputs, targets = [], []
        for k in range(batch_size):
            anomaly = k >= batch_size - pseudo
            video = self.videos[self.rng.choice(len(self.videos), p=self.weights)]
            # The largest stride this video can hold, so short clips still yield stride 1 windows.
            strides = self.pseudo_strides if anomaly else self.strides
            fits = [s for s in strides if (self.clip_length - 1) * s < len(video)] or [1]
            stride = int(self.rng.choice(fits))
            span = (self.clip_length - 1) * stride + 1
            start = int(self.rng.integers(0, len(video) - span + 1))
            inputs.append(video[start:start + span:stride])
            targets.append(video[start:start + self.clip_length] if anomaly else inputs[-1])
            # (No draw at all without boxes, so runs without them keep their random stream.)
            if anomaly and self.box_share > 0 and self.rng.random() < self.box_share:
                inputs[-1] = self.fast_box(inputs[-1], targets[-1])

        def stack(clips: list[np.ndarray]) -> np.ndarray:
            return np.stack(clips)[:, :, None].astype(np.float32)

        return stack(inputs), stack(targets)


    def fast_box(self, fast: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """The normal clip with one box taken from the fast clip: a box of random side
        (BOX_SIDES of the frame) centred at a place drawn in proportion to its motion."""
        size = normal.shape[-1]
        side = int(self.rng.integers(int(BOX_SIDES[0] * size), int(BOX_SIDES[1] * size) + 1))
        motion = np.abs(np.diff(fast.astype(np.float32), axis=0)).sum(axis=0)  # (S, S)
        half = side // 2
        inner = motion[half:size - side + half + 1, half:size - side + half + 1]
        weights = inner.ravel() + 1e-6  # a still clip: uniform
        pick = int(self.rng.choice(weights.size, p=weights / weights.sum()))
        y0, x0 = np.unravel_index(pick, inner.shape)
        out = normal.copy()
        out[:, y0:y0 + side, x0:x0 + side] = fast[:, y0:y0 + side, x0:x0 + side]
        return out


BOX_SIDES = (0.15, 0.4)  # a local pseudo-anomaly's box side, as a share of the frame side


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    step: int
    losses: list[float]


def learning_rate(config: TrainConfig, step: int) -> float:
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        progress = min(step / max(config.steps, 1), 1.0)
        return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ClipwatchError(f"unknown learning-rate schedule {config.lr_schedule!r}")


def initial_weights(path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint or of an exported .onnx, to fine-tune from."""
    if path.suffix == ".onnx":
        from clipwatch.model.fast_export import network_from_onnx

        if not path.is_file():
            raise ClipwatchError(f"{path} does not exist")
        return network_from_onnx(path).state_dict()
    return load_checkpoint(path)["model"]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(config: TrainConfig, out_dir: Path, resume: bool = False,
          max_minutes: float | None = None, stop_at: int | None = None,
          on_step: Callable[[int, float, float], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train until `config.steps`, checkpointing to out_dir/last.pt.

    `max_minutes` and `stop_at` (a step) end this invocation early (checkpointed), as an
    interruption would; `resume` then carries on with the same settings. `on_step(step,
    loss, clips_per_s)` hears of every step (a job's progress); `should_stop()` true ends
    the invocation at the next step, checkpointed (a job asked to stop, to resume later)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "last.pt"
    device = pick_device()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = SpatiotemporalAutoencoder(NetworkArgs(clip_length=config.input_spec.clip_length,
                                                  frame_size=config.input_spec.size)).to(device)
    if config.init and not (resume and ckpt_path.exists()):
        try:
            model.load_state_dict(initial_weights(Path(config.init)))
        except RuntimeError as exc:  # missing, extra or misshapen parameters
            raise ClipwatchError(f"{config.init} does not hold this network's weights "
                                 f"({str(exc).splitlines()[0]})") from None
        log.info("starting from the weights of %s", config.init)
    if not 0 <= config.pseudo_anomalies < config.batch_size:
        raise ClipwatchError(f"pseudo-anomalies per batch must be 0 to {config.batch_size - 1}")
    if not 0.0 <= config.pseudo_box_share <= 1.0:
        raise ClipwatchError("the share of local pseudo-anomalies must be between 0 and 1")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, losses, seconds, history = 0, [], 0.0, []
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses, seconds = state["step"], state["losses"], state["train_seconds"]
        saved = state["config"]
        history = state.get("history") or [  # checkpoints from before the history was kept
            {"from_step": 0, "steps": saved["steps"], "lr": saved["lr"],
             "lr_schedule": saved.get("lr_schedule", "constant"),
             "batch_size": saved["batch_size"]}]
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", ckpt_path, step)

    # Where this invocation ends: the run's last step, or an earlier stop asked for.
    target = min(config.steps, stop_at) if stop_at is not None else config.steps
    if step >= target:
        # Nothing to do: leave the checkpoint as it is (rerunning a finished script is harmless).
        log.info("%s is already at step %d; nothing to train", ckpt_path, step)
        return TrainResult(ckpt_path, step, losses)
    # Each start (or resume) with its settings, so a run extended with other settings says so.
    history.append({"from_step": step, "steps": config.steps, "lr": config.lr,
                    "lr_schedule": config.lr_schedule, "batch_size": config.batch_size})
    clips = load_normal_clips(config.data, config.input_spec, exclude=config.holdout)
    log.info("training on %d normal clips (%d frames), holding out %s", len(clips),
             sum(len(c.frames) for c in clips), list(config.holdout) or "none")
    sampler = ClipSampler([c.frames for c in clips], config.input_spec.clip_length,
                          config.frame_strides, rng, config.pseudo_strides,
                          config.pseudo_box_share)

    def checkpoint(path: Path = ckpt_path) -> None:
        save_checkpoint(path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "network_args": model.args.to_dict(), "input_spec": config.input_spec.to_dict(),
            "config": asdict(config), "train_clips": [c.name for c in clips],
            "train_frames": sum(len(c.frames) for c in clips),
            "step": step, "losses": losses, "train_seconds": seconds, "history": history,
            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "code_version": __version__, "code_commit": git_commit(), "hardware": hardware(),
        })

    model.train()
    started = time.monotonic()
    last_save = started
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    bar = tqdm(total=config.steps, initial=step, unit="step", dynamic_ncols=True)
    while step < target:
        if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
            log.info("time budget of %.1f min reached at step %d", max_minutes, step)
            break
        if should_stop is not None and should_stop():
            log.info("asked to stop at step %d; checkpointed to resume", step)
            break
        t0 = time.monotonic()
        inputs, targets = sampler.sample(config.batch_size, config.pseudo_anomalies)
        inputs, targets = torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device)
        with autocast:
            recon = model(inputs)
        loss = torch.mean((recon.float() - targets) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.step()
        step += 1
        losses.append(loss.item())
        elapsed = time.monotonic() - t0
        seconds += elapsed
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.5f}", clips_s=f"{config.batch_size / elapsed:.1f}")
        if on_step is not None:
            on_step(step, losses[-1], config.batch_size / elapsed)
        if config.snapshot_every and step % config.snapshot_every == 0:
            checkpoint(out_dir / f"step_{step:06d}.pt")
        if time.monotonic() - last_save > config.checkpoint_every_s:
            checkpoint()
            last_save = time.monotonic()
    bar.close()
    checkpoint()
    return TrainResult(ckpt_path, step, losses)
