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


def threshold_with_margin(labels: np.ndarray, scores: np.ndarray, target_miss_rate: float = 0.0) -> float:
    """The target's threshold moved into the gap below it, halfway to the next good part.

    ``threshold_for_miss_rate`` sits exactly on the score of the lowest bad part it must catch, so
    a slightly weaker defect on the line is already missed. Every threshold between that score and
    the next good part below it has the same validation figures; the middle of that gap (on the
    logit scale, where softmax scores spread evenly) leaves room on both sides.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    edge = threshold_for_miss_rate(labels, scores, target_miss_rate)
    if not (labels == 1).any() or edge <= 0.0:
        return edge
    below = scores[(labels == 0) & (scores < edge)]
    floor = float(below.max()) if below.size else 0.0
    low, high = np.clip([floor, edge], 1e-7, 1.0 - 1e-7)
    middle = (np.log(low / (1 - low)) + np.log(high / (1 - high))) / 2
    return float(min(edge, max(floor, 1.0 / (1.0 + np.exp(-middle)))))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))
