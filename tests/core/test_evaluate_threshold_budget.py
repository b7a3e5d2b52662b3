"""The evaluation report shows what the false-reject budget bought: the rule's threshold beside the chosen one."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from core.model.bundle import read_card, write_card
from core.training.evaluation import evaluate


def _counts(scores_csv: Path, threshold: float) -> tuple[int, int]:
    rows = list(csv.DictReader(scores_csv.open()))
    bad = np.array([r["label"] == "bad" for r in rows])
    score = np.array([float(r["score"]) for r in rows])
    return int((bad & (score < threshold)).sum()), int((~bad & (score >= threshold)).sum())


def test_a_threshold_lowered_by_the_budget_is_reported_beside_the_rules(
    tiny_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model, bundle)
    card = read_card(bundle)
    # As training records it when the budget lowered the threshold: the rule's own was higher.
    rule = min(0.99, card.threshold + 0.3)
    write_card(bundle, card.model_copy(update={"metrics": {**card.metrics, "threshold_of_rule": rule}}))
    out = tmp_path / "eval"
    report = evaluate(bundle, pair_data, out, split="val")
    at_rule, chosen = report["at_rule_threshold"], report["at_chosen_threshold"]
    assert at_rule["threshold"] == rule and chosen["threshold"] == card.threshold
    assert (at_rule["fn"], at_rule["fp"]) == _counts(out / "scores.csv", rule)
    assert (chosen["fn"], chosen["fp"]) == _counts(out / "scores.csv", card.threshold)
    assert f"| the rule's, before the false-reject budget | {rule:.4f} |" in (out / "report.md").read_text()


def test_a_threshold_the_budget_did_not_lower_has_no_such_row(
    tiny_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    card = read_card(tiny_model)
    # A run whose validation set is too small to spend 1% on keeps the rule's threshold.
    assert card.metrics["threshold_of_rule"] == card.threshold
    report = evaluate(tiny_model, pair_data, tmp_path / "eval", split="val")
    assert "at_rule_threshold" not in report
    assert "before the false-reject budget" not in (tmp_path / "eval" / "report.md").read_text()
