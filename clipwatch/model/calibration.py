"""Calibration on held-out normal footage: e_lo/e_hi for the causal score and the alert threshold.

e_lo and e_hi are the smallest and largest e(t) over the normal frames, the live
counterpart of the paper's per-video min and max; the threshold is the regularity that
the stated fraction of normal frames falls below (the false-alarm rate per frame).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from clipwatch.errors import DatasetError
from clipwatch.model.scoring import causal_regularity
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration

MIN_CALIBRATION_FRAMES = 20  # fewer normal frames say too little about e(t)

def calibrate_errors(errors: np.ndarray, false_alarm_rate: float, data: str,
                     scoring: ScoringOptions | None = None) -> Calibration:
    """Calibration constants from e(t) of normal frames, scored with `scoring`."""
    scoring = scoring or ScoringOptions()
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size < MIN_CALIBRATION_FRAMES:
        raise DatasetError(f"calibration needs at least {MIN_CALIBRATION_FRAMES} normal frames, "
                           f"got {errors.size}")
    if not 0.0 < false_alarm_rate < 0.5:
        raise DatasetError(f"false-alarm rate must be in (0, 0.5), got {false_alarm_rate}")
    provisional = Calibration(e_lo=float(errors.min()), e_hi=float(errors.max()), threshold=0.0,
                              false_alarm_rate=false_alarm_rate, data=data, frames=errors.size,
                              scoring=scoring)
    regularity = causal_regularity(errors, provisional)
    threshold = float(np.quantile(regularity, false_alarm_rate))
    return replace(provisional, threshold=threshold)
