"""Frame-level evaluation over pooled frames: ROC AUC and equal error rate (scikit-learn's ROC)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _checked(regularity: np.ndarray, abnormal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    regularity = np.asarray(regularity, dtype=np.float64)
    abnormal = np.asarray(abnormal, dtype=bool)
    if regularity.shape != abnormal.shape:
        raise ValueError(f"{regularity.shape[0]} scores for {abnormal.shape[0]} labels")
    keep = np.isfinite(regularity)
    return regularity[keep], abnormal[keep]


def has_both_classes(abnormal: np.ndarray) -> bool:
    """AUC and EER are defined only when there are both normal and abnormal frames."""
    abnormal = np.asarray(abnormal, dtype=bool)
    return bool(abnormal.any() and not abnormal.all())


def frame_auc(regularity: np.ndarray, abnormal: np.ndarray) -> float:
    """ROC AUC of irregularity (1 - regularity) for detecting abnormal frames."""
    regularity, abnormal = _checked(regularity, abnormal)
    return float(roc_auc_score(abnormal, -regularity))


def roc(regularity: np.ndarray, abnormal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) along all thresholds."""
    regularity, abnormal = _checked(regularity, abnormal)
    fpr, tpr, _ = roc_curve(abnormal, -regularity)
    return fpr, tpr


def equal_error_rate(regularity: np.ndarray, abnormal: np.ndarray) -> float:
    """The rate where false positives equal misses, interpolated between ROC points."""
    fpr, tpr = roc(regularity, abnormal)
    fnr = 1.0 - tpr
    gap = fpr - fnr  # rises from <= 0 to >= 0 along the curve
    crossing = int(np.argmax(gap >= 0))
    if crossing == 0:
        return float(fpr[0])
    # Linear interpolation between the two ROC points around the crossing.
    g0, g1 = gap[crossing - 1], gap[crossing]
    w = g0 / (g0 - g1) if g0 != g1 else 0.0
    return float(fpr[crossing - 1] + w * (fpr[crossing] - fpr[crossing - 1]))
