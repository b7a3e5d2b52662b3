"""What a threshold change would do, computed from the visual log before anyone applies it.

Every inspected part of a window (this shift, the last 24 hours, the last 7 days, a range) is
judged again at the current and at the proposed threshold (bad when ``score >= threshold``, as
on the line): how many would change verdict (good -> bad, bad -> good), split by what reviews
say the part truly is; the yield at both thresholds; and, on the parts whose truth is known from
a review, the miss rate and false-reject rate at both thresholds with 95% Clopper-Pearson
intervals (``core.training.operating.upper_bound``, two-sided). Beside them the bundle's own
validation figures at both thresholds, from the validation scores in its card, and the
validation defects the proposed threshold would miss: the caller must warn about those.

The window's parts are re-judged against the current threshold, not against the verdict each
was recorded with: a window may span earlier changes, and "what changes if I move from here to
there" is the question.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from core.reports.shifts import ShiftPlan
    from core.storage import VisualLog

Truth = Literal["good", "bad", "unreviewed"]
Direction = Literal["good_to_bad", "bad_to_good"]

WINDOWS = ("shift", "24h", "7d")
FLIPS_KEPT = 500  # flipped parts listed (thumbnails); the counts cover every one


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """A rate seen as ``count`` out of ``total`` with its 95% Clopper-Pearson interval."""

    count: int
    total: int
    rate: float | None  # None when total is 0
    low: float
    high: float

    @classmethod
    def of(cls, count: int, total: int) -> Rate:
        low, high = clopper_pearson(count, total)
        return cls(count=count, total=total, rate=count / total if total else None, low=low, high=high)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatingPoint:
    """Miss rate (bad parts called good) and false-reject rate (good parts called bad) at one threshold."""

    threshold: float
    miss: Rate
    false_reject: Rate


@dataclass(frozen=True, slots=True, kw_only=True)
class FlippedPart:
    """A part whose verdict would change."""

    part_id: str
    score: float
    direction: Direction
    truth: Truth
    image_path: str | None  # relative to the log's media root
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatIf:
    """The figures shown before a threshold change (and kept with it, ``to_json``)."""

    station: str
    since: datetime
    until: datetime
    current: float
    proposed: float
    inspected: int
    not_inspected: int
    good_to_bad: dict[Truth, int]
    bad_to_good: dict[Truth, int]
    yield_current: float | None
    yield_proposed: float | None
    reviewed_current: OperatingPoint
    reviewed_proposed: OperatingPoint
    validation_current: OperatingPoint | None
    validation_proposed: OperatingPoint | None
    validation_missed: tuple[float, ...]  # validation defect scores the proposed threshold misses
    validation_note: str | None
    flipped: tuple[FlippedPart, ...]
    # Scores for the pictures: reviewed good, reviewed bad, unreviewed.
    scores: dict[Truth, np.ndarray] = field(repr=False)

    @property
    def flips(self) -> int:
        return sum(self.good_to_bad.values()) + sum(self.bad_to_good.values())

    @property
    def misses_validation_defects(self) -> bool:
        """The proposed threshold would miss a defect of the bundle's validation set that the current catches."""
        return any(s >= self.current for s in self.validation_missed)

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """(false-reject rates, detection rates) of the reviewed parts over every threshold."""
        return roc_points(self.scores["good"], self.scores["bad"])

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON-able values (no scores, the first 50 flipped parts)."""
        data = asdict(self)
        data.pop("scores")
        data["since"], data["until"] = self.since.isoformat(), self.until.isoformat()
        data["flipped"] = [{**f, "created_at": f["created_at"].isoformat()} for f in data["flipped"][:50]]
        data["flips"] = self.flips
        data["misses_validation_defects"] = self.misses_validation_defects
        data["validation_missed"] = list(self.validation_missed)
        finite: dict[str, Any] = _finite(data)
        return finite


def _finite(value: Any) -> Any:
    """JSON has no NaN: a figure that is not a number becomes None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def clopper_pearson(count: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of ``count`` out of ``total``; (0, 1) when ``total`` is 0."""
    from core.training.operating import upper_bound  # the one-sided bound training reports

    if total <= 0:
        return 0.0, 1.0
    one_sided = 1.0 - (1.0 - confidence) / 2.0
    high = upper_bound(count, total, one_sided)
    # The lower bound of the rate is one minus the upper bound of its complement.
    low = 0.0 if count == 0 else 1.0 - upper_bound(total - count, total, one_sided)
    return float(low), float(high)


def operating_point(good: np.ndarray, bad: np.ndarray, threshold: float) -> OperatingPoint:
    """Miss and false-reject rates of parts known good / known bad at ``threshold``."""
    return OperatingPoint(
        threshold=float(threshold),
        miss=Rate.of(int((bad < threshold).sum()), int(bad.size)),
        false_reject=Rate.of(int((good >= threshold).sum()), int(good.size)),
    )


def roc_points(good: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC of known parts: false-reject rate and detection rate at every distinct score, from (0, 0)."""
    good, bad = np.asarray(good, dtype=np.float64), np.asarray(bad, dtype=np.float64)
    if good.size == 0 or bad.size == 0:
        return np.zeros(0), np.zeros(0)
    thresholds = np.unique(np.concatenate([good, bad]))[::-1]
    good_sorted, bad_sorted = np.sort(good), np.sort(bad)
    # Parts at or above each threshold, counted by binary search.
    fpr = (good.size - np.searchsorted(good_sorted, thresholds, side="left")) / good.size
    tpr = (bad.size - np.searchsorted(bad_sorted, thresholds, side="left")) / bad.size
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def validation_scores(metadata: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(good, bad) validation scores from a model card (as the log keeps it), or None when it has none."""
    metrics = (metadata or {}).get("metrics") or {}
    stored = metrics.get("val_scores")
    if not isinstance(stored, Mapping):
        return None
    return (
        np.asarray(stored.get("good", []), dtype=np.float64),
        np.asarray(stored.get("bad", []), dtype=np.float64),
    )


def window(choice: str, now: datetime, plan: ShiftPlan | None = None) -> tuple[datetime, datetime]:
    """``[since, until)`` of a named window: ``shift`` (the current one of ``plan``), ``24h``, ``7d``.

    Raises:
        ValueError: Another name, or ``shift`` without a plan.
    """
    if choice == "24h":
        return now - timedelta(hours=24), now
    if choice == "7d":
        return now - timedelta(days=7), now
    if choice == "shift":
        if plan is None:
            raise ValueError("the shift window needs a shift plan")
        shift = plan.shift_at(now)
        return shift.start, min(shift.end, now + timedelta(seconds=1))
    raise ValueError(f"unknown window {choice!r}; one of {', '.join(WINDOWS)} or a range")


def what_if(
    log: VisualLog,
    proposed: float,
    *,
    since: datetime,
    until: datetime,
    current: float | None = None,
    model_metadata: Mapping[str, Any] | None = None,
    flips_kept: int = FLIPS_KEPT,
) -> WhatIf:
    """Judge the window's parts again at ``current`` (default: the log's) and ``proposed``.

    Args:
        log: The station's visual log (read only).
        proposed: The threshold considered, 0..1.
        since: Start of the window (aware).
        until: End of the window, excluded.
        current: The threshold in force; default the one last recorded in the log.
        model_metadata: The bundle's card (as ``VisualLog.models`` keeps it) for the validation
            figures; default the card of the model the log's last threshold change names.
        flips_kept: How many flipped parts to list (all are counted).

    Raises:
        ValueError: A threshold outside 0..1, or no current threshold known.
    """
    if current is None:
        current = log.current_threshold()
        if current is None:
            raise ValueError("the log has no threshold recorded yet; give the current one")
    for name, value in (("current", current), ("proposed", proposed)):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"the {name} threshold {value} must be between 0 and 1")
    if model_metadata is None:
        model_metadata = _current_model_metadata(log)

    sample = log.score_sample(since, until)
    codes: dict[Truth, int] = {"good": 0, "bad": 1, "unreviewed": -1}
    arrays: dict[Truth, np.ndarray] = {k: sample.scores[sample.truth == code] for k, code in codes.items()}
    good_to_bad: dict[Truth, int] = {}
    bad_to_good: dict[Truth, int] = {}
    for truth, scores in arrays.items():
        now_bad, then_bad = scores >= current, scores >= proposed
        good_to_bad[truth] = int((~now_bad & then_bad).sum())
        bad_to_good[truth] = int((now_bad & ~then_bad).sum())
    # The parts that flip are those scoring between the two thresholds.
    low, high = min(current, proposed), max(current, proposed)
    names: dict[int, Truth] = {code: truth for truth, code in codes.items()}
    flipped = [
        FlippedPart(
            part_id=p.part_id,
            score=p.score,
            direction="bad_to_good" if p.score >= current else "good_to_bad",
            truth=names[p.truth],
            image_path=p.image_path,
            created_at=p.created_at,
        )
        for p in (log.parts_in_band(since, until, low, high, limit=flips_kept) if low < high else [])
    ]
    not_inspected = sample.not_inspected
    every = sample.scores
    inspected = int(every.size)

    def yield_at(threshold: float) -> float | None:
        return float((every < threshold).sum() / inspected) if inspected else None

    validation = validation_scores(model_metadata)
    note = None
    missed: tuple[float, ...] = ()
    val_current = val_proposed = None
    if validation is not None:
        val_good, val_bad = validation
        val_current = operating_point(val_good, val_bad, current)
        val_proposed = operating_point(val_good, val_bad, proposed)
        missed = tuple(sorted(float(s) for s in val_bad if s < proposed))
    else:
        note = "the bundle's card has no validation scores (trained before they were kept)"
        highest = ((model_metadata or {}).get("metrics") or {}).get("threshold_highest")
        if isinstance(highest, int | float) and proposed > highest >= current:
            # The highest threshold at which training still caught its validation defects.
            missed = (float(highest),)
            note += f"; above {highest:.4f} the training's validation defects are missed"
    return WhatIf(
        station=log.station,
        since=since,
        until=until,
        current=float(current),
        proposed=float(proposed),
        inspected=inspected,
        not_inspected=not_inspected,
        good_to_bad=good_to_bad,
        bad_to_good=bad_to_good,
        yield_current=yield_at(current),
        yield_proposed=yield_at(proposed),
        reviewed_current=operating_point(arrays["good"], arrays["bad"], current),
        reviewed_proposed=operating_point(arrays["good"], arrays["bad"], proposed),
        validation_current=val_current,
        validation_proposed=val_proposed,
        validation_missed=missed,
        validation_note=note,
        flipped=tuple(flipped),
        scores=arrays,
    )


def _current_model_metadata(log: VisualLog) -> Mapping[str, Any] | None:
    """The card of the model the station's last threshold change names (the model in use)."""
    changes = log.threshold_changes()
    model_hash = next((c.model_hash for c in reversed(changes) if c.model_hash), None)
    if model_hash is None:
        return None
    return next((m.metadata for m in log.models() if m.hash == model_hash), None)


def describe(result: WhatIf) -> Sequence[str]:
    """The figures as lines of text (the CLI without ``--json``; the panel's summary)."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    def rate(r: Rate) -> str:
        return f"{r.count}/{r.total} = {pct(r.rate)} (95% CI {pct(r.low)} to {pct(r.high)})"

    lines = [
        f"{result.station}: {result.inspected} inspected parts from {result.since:%Y-%m-%d %H:%M} to"
        f" {result.until:%Y-%m-%d %H:%M} UTC ({result.not_inspected} not inspected, unchanged)",
        f"threshold {result.current:.4f} -> {result.proposed:.4f}: {result.flips} parts change verdict",
        "  good -> bad: "
        + ", ".join(f"{n} {k}" for k, n in result.good_to_bad.items())
        + "   bad -> good: "
        + ", ".join(f"{n} {k}" for k, n in result.bad_to_good.items()),
        f"  yield {pct(result.yield_current)} -> {pct(result.yield_proposed)}",
    ]
    for label, now, then in (
        ("reviewed parts", result.reviewed_current, result.reviewed_proposed),
        ("bundle validation", result.validation_current, result.validation_proposed),
    ):
        if now is None or then is None:
            continue
        lines.append(f"  {label}: miss {rate(now.miss)} -> {rate(then.miss)}")
        lines.append(f"  {label}: false reject {rate(now.false_reject)} -> {rate(then.false_reject)}")
    if result.validation_note:
        lines.append(f"  note: {result.validation_note}")
    if result.misses_validation_defects:
        lines.append(
            f"  WARNING: {result.proposed:.4f} misses {len(result.validation_missed)} defect(s) of the"
            " bundle's validation set"
        )
    return lines
