"""Plots for analysts: regularity curves with the ground truth shaded (matplotlib, no display)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on servers and in CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clipwatch.errors import ClipwatchError  # noqa: E402


def _shade_abnormal(ax, frames: np.ndarray, abnormal: np.ndarray) -> None:
    """Shade each run of consecutive abnormal frames."""
    edges = np.diff(np.concatenate([[0], abnormal.astype(int), [0]]))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        ax.axvspan(frames[start] - 0.5, frames[stop - 1] + 0.5, color="tab:red", alpha=0.15,
                   lw=0, label="ground truth: abnormal" if start == np.flatnonzero(edges == 1)[0]
                   else None)


def plot_regularity(clips, calibration, path: Path, title: str = "") -> Path:
    """One panel per clip: paper and causal regularity, the alert threshold, ground truth."""
    cols = min(3, len(clips))
    rows = math.ceil(len(clips) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.2 * rows), squeeze=False)
    for ax, clip in zip(axes.flat, clips, strict=False):
        if clip.abnormal is not None and clip.abnormal.any():
            _shade_abnormal(ax, clip.frames, clip.abnormal)
        ax.plot(clip.frames, clip.paper, color="tab:blue", lw=1.3, label="regularity (paper)")
        causal = clip.causal(calibration)
        if causal is not None:
            ax.plot(clip.frames, causal, color="tab:green", lw=1.0, alpha=0.8,
                    label="regularity (causal)")
            ax.axhline(calibration.threshold, color="tab:orange", ls="--", lw=1,
                       label=f"alert threshold ({calibration.false_alarm_rate:.0%} FAR)")
        ax.set_title(clip.name, fontsize=10)
        ax.set_xlabel("frame")
        ax.set_ylabel("regularity s(t)")
        ax.set_xlim(clip.frames[0], clip.frames[-1])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(clips):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as exc:
        raise ClipwatchError(f"cannot write plot {path}: {exc}") from None
    finally:
        plt.close(fig)
    return path


def plot_roc(clips, calibration, path: Path, title: str = "") -> Path:
    """ROC of the pooled frames: paper regularity, and causal where there is a calibration."""
    from clipwatch.model.metrics import frame_auc, roc

    labelled = [c for c in clips if c.abnormal is not None]
    if not labelled:
        raise ClipwatchError("no ground truth: nothing to draw a ROC from")
    abnormal = np.concatenate([c.abnormal for c in labelled])
    curves = {"paper": np.concatenate([c.paper for c in labelled])}
    if calibration is not None:
        curves["causal"] = np.concatenate([c.causal(calibration) for c in labelled])
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, regularity in curves.items():
        fpr, tpr = roc(regularity, abnormal)
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUC {frame_auc(regularity, abnormal):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.plot([0, 1], [1, 0], color="grey", ls="--", lw=0.8, label="EER line")
    ax.set_xlabel("false positive rate (normal frames flagged)")
    ax.set_ylabel("true positive rate (abnormal frames found)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_loss(losses: list[float], path: Path, title: str = "training loss") -> Path:
    """Per-step loss (faint) and its running mean over 50 steps, log scale."""
    losses = np.asarray(losses, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.25, lw=0.8, label="per step")
    window = min(50, len(losses))
    if window > 1:
        mean = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], mean, color="tab:blue", lw=1.6, label=f"mean of {window}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE (normalized pixels)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)
