"""Where a `clipwatch learn` stands, in its work folder's `progress.json`.

The learn process writes it (atomically, at most about once a second while training) and
anyone may read it: the service's learning jobs show it in the API and the viewer, a script
can `cat` it. It says the stage, and while training the step, the loss, clips/s and an
estimate of the time left; it outlives the process, so a job found after a restart shows
where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from clipwatch.jsonfile import write_json

FILE = "progress.json"
# After training: export, then scoring the held-out frames with two models and the
# validation's stretched copies; about this many seconds a held-out frame on 2 CPU cores
# (vtest: 190 held-out frames, 12 s), plus the export.
AFTER_TRAIN_S_PER_FRAME = 0.06
EXPORT_S = 10.0


def read_progress(work: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(work) / FILE).read_text())
    except (OSError, ValueError):
        return None


class ProgressFile:
    """Writes progress.json; `update` merges fields, `train_step` adds the rates and ETA."""

    def __init__(self, work: Path, min_interval_s: float = 1.0) -> None:
        self.path = Path(work) / FILE
        self.min_interval_s = min_interval_s
        self.state: dict[str, Any] = read_progress(work) or {}
        self._written = 0.0
        self._rate: float | None = None  # clips/s, smoothed

    def update(self, force: bool = True, **fields: Any) -> None:
        self.state.update(fields, updated_at=time.time(), pid=os.getpid())
        now = time.monotonic()
        if not force and now - self._written < self.min_interval_s:
            return
        self._written = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.state, indent=None)

    def stage(self, name: str, **fields: Any) -> None:
        self.update(stage=name, **fields)

    def train_step(self, step: int, loss: float, clips_per_s: float, *, steps: int,
                   batch_size: int, budget_s: float, train_s: float,
                   held_frames: int) -> None:
        """One training step: ETA = the training left (steps or budget, whichever ends it
        first) + the stages after it."""
        self._rate = clips_per_s if self._rate is None else 0.9 * self._rate + 0.1 * clips_per_s
        steps_per_s = self._rate / batch_size
        train_left = min((steps - step) / steps_per_s if steps_per_s > 0 else float("inf"),
                         max(0.0, budget_s - train_s))
        after = EXPORT_S + AFTER_TRAIN_S_PER_FRAME * held_frames
        # The steps this run will reach: the step limit, or where the budget ends it at this
        # rate (a fine-tune's limit is in effect the budget).
        expected = min(steps, step + int(steps_per_s * max(0.0, budget_s - train_s)))
        self.update(force=step >= steps, stage="train", step=step, steps=max(step, expected),
                    steps_max=steps,
                    loss=round(loss, 6), clips_per_s=round(self._rate, 2),
                    train_seconds=round(train_s, 1), budget_s=round(budget_s, 1),
                    eta_s=round(train_left + after, 1))
