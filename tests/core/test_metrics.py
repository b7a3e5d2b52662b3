"""Thresholds chosen on validation: the target's edge, and the margin below it."""

from __future__ import annotations

import numpy as np
import pytest

from core.common.metrics import rates_at, threshold_for_miss_rate, threshold_with_margin

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
