"""Figures that matter on the line: miss rate (FNR), false-reject rate (FPR), AUC, thresholds."""

from __future__ import annotations

import numpy as np


def rates_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-negative rate, false-positive rate) when a part is bad at ``score >= threshold``."""
    labels = np.asarray(labels)
    predicted_bad = np.asarray(scores) >= threshold
    bad, good = labels == 1, labels == 0
    fnr = float((~predicted_bad & bad).sum() / bad.sum()) if bad.any() else 0.0
    fpr = float((predicted_bad & good).sum() / good.sum()) if good.any() else 0.0
    return fnr, fpr


def threshold_for_miss_rate(labels: np.ndarray, scores: np.ndarray, target_miss_rate: float = 0.0) -> float:
    """The highest threshold whose miss rate on these parts is at most the target.

    Raising the threshold only ever adds misses, so the answer is the score of the bad part that
    may still be missed: with a target of 0, the lowest score of any bad part.
    """
    bad_scores = np.sort(np.asarray(scores)[np.asarray(labels) == 1])
    if len(bad_scores) == 0:
        return 0.5
    allowed_misses = int(np.floor(target_miss_rate * len(bad_scores) + 1e-9))
    return float(bad_scores[min(allowed_misses, len(bad_scores) - 1)])


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))
