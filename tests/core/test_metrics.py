"""Thresholds chosen on validation: the target's edge, the margin below it, a false-reject budget spent below that."""

from __future__ import annotations

import numpy as np
import pytest

from core.common.metrics import (
    rates_at,
    threshold_for_miss_rate,
    threshold_spending_budget,
    threshold_with_margin,
)

LABELS = np.array([0, 0, 0, 1, 1, 1])
SCORES = np.array([0.1, 0.3, 0.6, 0.5, 0.8, 0.9])


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_highest_threshold_sits_on_the_weakest_defect_it_must_catch() -> None:
    assert threshold_for_miss_rate(LABELS, SCORES, 0.0) == 0.5
    assert threshold_for_miss_rate(LABELS, SCORES, 1 / 3) == 0.8  # one miss allowed
    assert threshold_for_miss_rate(np.array([0, 0]), np.array([0.2, 0.4])) == 0.5  # no bad part


@pytest.mark.parametrize(("target", "good_below"), [(0.0, 0.3), (1 / 3, 0.6)])
def test_margin_moves_into_the_gap_and_keeps_the_validation_figures(target: float, good_below: float) -> None:
    edge = threshold_for_miss_rate(LABELS, SCORES, target)
    margin = threshold_with_margin(LABELS, SCORES, target)
    assert good_below < margin < edge
    assert _logit(margin) == pytest.approx((_logit(good_below) + _logit(edge)) / 2)
    assert rates_at(LABELS, SCORES, margin) == rates_at(LABELS, SCORES, edge)


def test_margin_without_a_good_part_below_goes_low_and_never_negative() -> None:
    labels, scores = np.array([0, 1, 1]), np.array([0.95, 0.5, 0.9])
    margin = threshold_with_margin(labels, scores)
    assert 0.0 <= margin < 0.01
    assert rates_at(labels, scores, margin) == rates_at(labels, scores, 0.5) == (0.0, 1.0)


def _separated(good: int, bad: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation parts as a well-trained classifier scores them: good low, bad near 1."""
    rng = np.random.default_rng(7)
    scores = np.concatenate([rng.uniform(0.0, 0.3, good), rng.uniform(0.9, 1.0, bad)])
    return np.array([0] * good + [1] * bad), scores


def test_a_false_reject_budget_lowers_the_threshold_to_catch_weaker_defects() -> None:
    # 150 good and 52 bad validation parts, as in the casting seed regime: the zero-miss rule puts
    # the threshold in the wide gap below the weakest defect; 1% of 150 good parts is one part,
    # so the threshold goes down to just above the second-highest good part.
    labels, scores = _separated(150, 52)
    rule = threshold_with_margin(labels, scores)
    spent = threshold_spending_budget(labels, scores, rule, 0.01)
    good = np.sort(scores[labels == 0])[::-1]
    assert good[1] < spent < good[0] < rule
    assert int((scores[labels == 0] >= spent).sum()) == 1
    assert rates_at(labels, scores, spent)[0] == 0.0  # still catches every validation defect
    assert int((scores[labels == 0] >= threshold_spending_budget(labels, scores, rule, 0.02)).sum()) == 3


@pytest.mark.parametrize(
    ("good", "budget"),
    [(50, 0.01), (150, 0.0)],  # 1% of 50 parts is no part at all; no budget
)
def test_a_budget_that_allows_no_good_part_keeps_the_rules_threshold(good: int, budget: float) -> None:
    labels, scores = _separated(good, 20)
    rule = threshold_with_margin(labels, scores)
    assert threshold_spending_budget(labels, scores, rule, budget) == rule


def test_the_budget_never_raises_the_threshold() -> None:
    # Overlapping classes: catching the weakest defect already rejects more good parts than the
    # budget; the rule's lower threshold stays (a missed defect costs more than a false reject).
    labels = np.array([0] * 100 + [1] * 10)
    scores = np.concatenate([np.linspace(0.0, 0.8, 100), np.linspace(0.5, 1.0, 10)])
    rule = threshold_with_margin(labels, scores)
    assert rule <= 0.5
    assert threshold_spending_budget(labels, scores, rule, 0.05) == rule
