"""Operating points of a score on labelled parts, with honest uncertainty (used by every report).

Every miss rate (FNR) and false-reject rate (FPR) comes with its one-sided 95% Clopper-Pearson
upper bound: 0 misses out of n bad parts still allows a miss rate of about 3/n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OperatingPoint", "upper_bound"]


def upper_bound(failures: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen as ``failures`` out of ``trials``."""
    from scipy.stats import beta

    if trials == 0:
        return 1.0
    if failures >= trials:
        return 1.0
    return float(beta.ppf(confidence, failures + 1, trials - failures))


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    threshold: float
    tp: int  # bad parts called bad
    fn: int  # bad parts missed
    tn: int
    fp: int  # good parts rejected
    fnr: float
    fnr_upper95: float
    fpr: float
    fpr_upper95: float

    @classmethod
    def at(cls, labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
        bad = labels == 1
        called = scores >= threshold
        tp, fn = int((bad & called).sum()), int((bad & ~called).sum())
        tn, fp = int((~bad & ~called).sum()), int((~bad & called).sum())
        return cls(
            threshold=float(threshold), tp=tp, fn=fn, tn=tn, fp=fp,
            fnr=fn / max(tp + fn, 1), fnr_upper95=upper_bound(fn, tp + fn),
            fpr=fp / max(tn + fp, 1), fpr_upper95=upper_bound(fp, tn + fp),
        )  # fmt: skip
