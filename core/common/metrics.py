"""Figures that matter on the line: miss rate (FNR), false-reject rate (FPR), AUC, thresholds."""

from __future__ import annotations

import math

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


def threshold_for_budget(good_scores: np.ndarray, budget: float) -> float:
    """The threshold that rejects at most ``budget`` of these good parts (a score at or above it is bad).

    ``k = floor(budget * n)`` parts may score at or above it; it sits in the middle of the gap
    between the k-th and the (k+1)-th highest score (above the highest when k is 0), so that a
    part scoring like the (k+1)-th is not rejected by a rounding of the score.

    Raises:
        ValueError: No good scores, or a budget outside 0..1.
    """
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"false-reject budget must be within 0..1, got {budget}")
    scores = np.sort(np.asarray(good_scores, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise ValueError("a threshold for a false-reject budget needs validation good parts")
    k = min(int(math.floor(budget * scores.size + 1e-9)), scores.size - 1)
    if k == 0:
        return float(scores[0] * (1.0 + 1e-3) + 1e-6)
    return float((scores[k - 1] + scores[k]) / 2.0)


def threshold_spending_budget(
    labels: np.ndarray, scores: np.ndarray, rule_threshold: float, budget: float
) -> float:
    """The rule's threshold, lowered to spend a false-reject budget on catching more defects.

    A threshold chosen to catch every validation defect sits just below the weakest of a few
    dozen validation defects; a weaker defect on the line is missed although the validation good
    parts leave room below. Since a missed defect costs far more than a rejected good part, the
    threshold goes down to the one that rejects ``budget`` of the validation good parts
    (``threshold_for_budget``) when that is lower. The budget is spent only when it allows at
    least one validation good part (``budget x good parts >= 1``): with fewer good parts it would
    only move the threshold onto the highest good part, out of the rule's margin.
    """
    good = np.asarray(scores, dtype=np.float64)[np.asarray(labels) == 0]
    if budget <= 0.0 or math.floor(budget * good.size + 1e-9) < 1:
        return rule_threshold
    return min(rule_threshold, threshold_for_budget(good, budget))


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
