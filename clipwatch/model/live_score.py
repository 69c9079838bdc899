"""The live score of one camera: e(t) in, causal regularity out, frame by frame.

It applies the model's scoring (the trailing mean, `smoothN`) causally, and the causal
regularity with the calibration in force: the model's, a camera's own, or one learned from
the camera's first frames (its baseline, taken as normal, with no verdict until it is
learned). The `overlap` option needs the clips after a frame, so live scoring leaves it out.

After a start or a gap the first clip also scores its first T-1 frames, with less temporal
context than the model had in training: their error runs high (UCSD Ped2 test 1: e(t) 142 at
its first frame, 87-107 on the rest of its normal frames). Live, they get no verdict and stay
out of the trailing mean and the baseline, so a reconnecting camera does not raise an alert.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from clipwatch.model.calibration import MIN_CALIBRATION_FRAMES, calibrate_errors
from clipwatch.model.scoring import causal_regularity
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration


@dataclass(frozen=True)
class LiveScore:
    error: float  # e(t) after the trailing mean
    regularity: float | None  # None while the baseline is still being learned


class LiveScorer:
    """Causal regularity for one camera's frames, in order."""

    def __init__(self, scoring: ScoringOptions, calibration: Calibration | None,
                 baseline_frames: int | None = None, false_alarm_rate: float = 0.01,
                 warmup_frames: int = 9) -> None:
        self.scoring = replace(scoring, overlap=False)
        self.calibration = None if baseline_frames else calibration
        self._baseline_frames = baseline_frames or 0
        self._false_alarm_rate = false_alarm_rate
        self._baseline: list[float] = []
        self._baseline_seen = 0
        self._recent: deque[float] = deque(maxlen=self.scoring.smooth)
        self.warmup_frames = warmup_frames
        self._warmup_left = warmup_frames

    @property
    def learning(self) -> bool:
        return self.calibration is None and self._baseline_frames > 0

    @property
    def baseline_progress(self) -> tuple[int, int]:
        return self._baseline_seen, self._baseline_frames

    def reset(self) -> None:
        """After a gap in the source: the trailing mean must not mix the two sides."""
        self._recent.clear()
        self._warmup_left = self.warmup_frames

    def push(self, error: float) -> LiveScore:
        if self.learning:
            self._baseline_seen += 1  # the baseline is the camera's first N frames, warm-up too
        if self._warmup_left > 0:
            self._warmup_left -= 1
            return LiveScore(error, None)
        self._recent.append(error)
        smoothed = sum(self._recent) / len(self._recent)
        if self.learning:
            self._baseline.append(smoothed)
            if self._baseline_seen >= self._baseline_frames and \
                    len(self._baseline) >= MIN_CALIBRATION_FRAMES:
                self.calibration = calibrate_errors(
                    self._baseline, self._false_alarm_rate,
                    f"first {len(self._baseline)} frames of the camera", self.scoring)
                self._baseline = []
            return LiveScore(smoothed, None)
        if self.calibration is None:
            return LiveScore(smoothed, None)  # an uncalibrated model gives no verdict
        return LiveScore(smoothed, float(causal_regularity(smoothed, self.calibration)))
