"""The second opinion in an evaluation report: each opinion alone and both together (issue 20).

For a bundle with a good-only anomaly model (``core.model.anomaly``), ``inspector evaluate`` adds
to the report the same figures for the classifier alone, the anomaly score alone and the combined
decision (bad when either passes its threshold): misses and false rejects at the chosen
thresholds with their 95% upper bounds, the AUC and ROC curve of each score, the hindsight cost
of catching every defect, and the misses of each with their maps (``misses_anomaly.png``: the
anomaly map of the parts the combined decision still misses, and of those only one opinion caught).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.training.data import Sample
from core.training.operating import OperatingPoint


def combined_report(
    y: np.ndarray,
    p: np.ndarray,
    a: np.ndarray,
    threshold: float,
    anomaly_threshold: float,
    usable: list[Sample],
) -> dict[str, Any]:
    """Figures of the classifier alone, the anomaly score alone and both (see the module).

    Args:
        y: Labels (1 = bad).
        p: Classifier scores.
        a: Anomaly scores.
        threshold: The classifier's threshold in force.
        anomaly_threshold: The anomaly model's threshold.
        usable: The parts, in the order of the scores.
    """
    from sklearn.metrics import roc_auc_score

    called_c, called_a = p >= threshold, a >= anomaly_threshold
    combined = (called_c | called_a).astype(np.float64)
    bad = y == 1
    out: dict[str, Any] = {
        "anomaly_threshold": float(anomaly_threshold),
        "classifier": asdict(OperatingPoint.at(y, p, threshold)),
        "anomaly": asdict(OperatingPoint.at(y, a, anomaly_threshold)),
        "combined": asdict(OperatingPoint.at(y, combined, 0.5)),
        "anomaly_roc_auc": float(roc_auc_score(y, a)),
        "anomaly_catch_all_in_hindsight": asdict(OperatingPoint.at(y, a, float(a[bad].min()))),
        "caught_only_by_classifier": int((bad & called_c & ~called_a).sum()),
        "caught_only_by_anomaly": int((bad & called_a & ~called_c).sum()),
        "false_rejects_only_by_anomaly": int((~bad & called_a & ~called_c).sum()),
    }

    def listed(mask: np.ndarray) -> list[dict[str, Any]]:
        order = np.flatnonzero(mask)
        return [
            {"path": str(usable[i].path), "label": "bad" if y[i] else "good", "score": float(p[i]),
             "anomaly_score": float(a[i])}
            for i in order
        ]  # fmt: skip

    out["missed_by_classifier"] = listed(bad & ~called_c)
    out["missed_by_anomaly"] = listed(bad & ~called_a)
    out["missed_by_both"] = listed(bad & ~called_c & ~called_a)
    # The classifier's weakest defects (its lowest scores), where the anomaly score puts them.
    weakest = np.argsort(np.where(bad, p, np.inf))[: min(20, int(bad.sum()))]
    good_a = np.sort(a[~bad])
    out["weakest_classifier_defects"] = [
        {"path": str(usable[i].path), "score": float(p[i]), "anomaly_score": float(a[i]),
         "anomaly_above_good_share": float(np.searchsorted(good_a, a[i], side="left") / max(len(good_a), 1))}
        for i in weakest
    ]  # fmt: skip
    return out


def combined_figures(
    out_dir: Path, y: np.ndarray, p: np.ndarray, a: np.ndarray, section: dict[str, Any]
) -> None:
    """``curves_combined.png``: the ROC of each score with the three operating points, and the
    anomaly score's histogram with its threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for scores, name in ((p, "classifier"), (a, "anomaly")):
        fpr, tpr, _ = roc_curve(y, scores)
        axes[0].plot(fpr, tpr, lw=2, label=f"{name} (AUC {roc_auc_score(y, scores):.4f})")
    for name, marker in (("classifier", "o"), ("anomaly", "s"), ("combined", "*")):
        op = section[name]
        axes[0].plot([op["fpr"]], [1.0 - op["fnr"]], marker, ms=10, label=f"{name} at its threshold(s)")
    axes[0].set(xlabel="false-reject rate", ylabel="detection rate", title="ROC", xscale="symlog",
                xlim=(0, 1))  # fmt: skip
    axes[0].set_xscale("symlog", linthresh=0.01)
    axes[0].legend(fontsize=8)
    bins = np.linspace(float(a.min()), float(np.percentile(a, 99.5)), 50)
    axes[1].hist(np.clip(a[y == 0], None, bins[-1]), bins=bins, alpha=0.6, label="good", color="tab:green")
    axes[1].hist(np.clip(a[y == 1], None, bins[-1]), bins=bins, alpha=0.6, label="bad", color="tab:red")
    axes[1].axvline(section["anomaly_threshold"], color="black", ls="--", label="threshold")
    axes[1].set(xlabel="anomaly score (distance from good parts)", ylabel="parts", yscale="log",
                title="anomaly scores")  # fmt: skip
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "curves_combined.png", dpi=110)
    plt.close(fig)


def misses_gallery(out_dir: Path, tiles: list[tuple[np.ndarray, np.ndarray, str]]) -> None:
    """``misses_anomaly.png``: each part with its anomaly map and a label (at most 48)."""
    import cv2

    from core.imaging.overlay import make_overlay

    if not tiles:
        return
    made = []
    for image, amap, label in tiles[:48]:
        tile = make_overlay(image, amap, size=(192, 192))[:, :, ::-1].copy()
        cv2.putText(tile, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        made.append(tile)
    while len(made) % 6:
        made.append(np.zeros_like(made[0]))
    rows = [np.hstack(made[i : i + 6]) for i in range(0, len(made), 6)]
    cv2.imwrite(str(out_dir / "misses_anomaly.png"), np.vstack(rows))


def markdown_lines(section: dict[str, Any]) -> list[str]:
    """The report.md lines of the second opinion."""

    def line(name: str, op: dict[str, Any]) -> str:
        return (
            f"| {name} | {op['fn']}/{op['fn'] + op['tp']} | {op['fnr']:.4f} (≤ {op['fnr_upper95']:.4f}) | "
            f"{op['fp']}/{op['fp'] + op['tn']} | {op['fpr']:.4f} (≤ {op['fpr_upper95']:.4f}) |"
        )

    hind = section["anomaly_catch_all_in_hindsight"]
    return [
        "",
        f"## The second opinion (anomaly threshold {section['anomaly_threshold']:.4g})",
        "",
        "| decision | missed | FNR (95% upper) | false rejects | FPR (95% upper) |",
        "|---|---|---|---|---|",
        line("classifier alone", section["classifier"]),
        line("anomaly score alone", section["anomaly"]),
        line("combined (either)", section["combined"]),
        "",
        f"Anomaly score AUC {section['anomaly_roc_auc']:.4f}; catching every defect with it alone would "
        f"reject {hind['fp']} good parts ({hind['fpr']:.4f}). Caught only by the classifier: "
        f"{section['caught_only_by_classifier']}; only by the anomaly score: {section['caught_only_by_anomaly']} "
        f"(at the cost of {section['false_rejects_only_by_anomaly']} false rejects of its own).",
        "Figures: `curves_combined.png`; the combined misses and the parts one opinion alone caught, "
        "with their anomaly maps: `misses_anomaly.png`.",
    ]
