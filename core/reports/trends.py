"""The trends of the current shift, as the station window's trend page shows them.

One call reads the visual log (``VisualLog.trend``: grouped in the database) for the shift that
covers ``now``, from its start to ``now``, in intervals short enough to show a change within the
shift. The shift plan is the one stored in the log, else ``DEFAULT_PLAN``: the same shifts as
the shift report, so the page and the report talk about the same span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.common.types import Verdict
from core.reports.shifts import DEFAULT_PLAN, Shift, ShiftPlan
from core.storage import VisualLog
from core.storage.trend_queries import Trend

DEFAULT_BUCKET_S = 600  # ten-minute intervals: 48 over an eight-hour shift
DEFAULT_SCORE_BINS = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftTrends:
    """A shift's trends up to a moment.

    Attributes:
        station: The station's name.
        shift: The shift (its start and end, UTC).
        until: The moment the trends run to (the end of the shift at the latest).
        trend: Verdicts, latency and scores per interval (see ``core.storage.trend_queries``).
        threshold: The threshold in force: the newest inspected part's of the shift, else the
            newest part's before it; None before the first inspected part.
    """

    station: str
    shift: Shift
    until: datetime
    trend: Trend
    threshold: float | None

    @property
    def bad_rate(self) -> float | None:
        """Bad parts per inspected part over the shift so far; None before the first one."""
        inspected = sum(b.inspected for b in self.trend.buckets)
        return sum(b.bad for b in self.trend.buckets) / inspected if inspected else None


def shift_plan_of(log: VisualLog, timezone: str | None = None) -> ShiftPlan:
    """The plan stored in the log, else ``DEFAULT_PLAN`` (in ``timezone``, default local)."""
    stored = log.shift_plan()
    if stored:
        return ShiftPlan.from_definitions(stored, timezone)
    return ShiftPlan.parse(DEFAULT_PLAN, timezone)


def shift_trends(
    log: VisualLog,
    *,
    now: datetime | None = None,
    plan: ShiftPlan | None = None,
    bucket_s: int = DEFAULT_BUCKET_S,
    score_bins: int = DEFAULT_SCORE_BINS,
) -> ShiftTrends:
    """The trends of the shift that covers ``now`` (default: the log's clock), up to ``now``.

    Args:
        log: The station's visual log (read only).
        now: The moment; default ``log.now()``.
        plan: The shift plan; default ``shift_plan_of(log)``.
        bucket_s: Length of an interval in seconds.
        score_bins: Bins of the score distribution over 0..1.

    Raises:
        StorageError: The log cannot be read.
    """
    now = log.now() if now is None else now
    plan = shift_plan_of(log) if plan is None else plan
    shift = plan.shift_at(now)
    until = min(max(now, shift.start.replace(microsecond=0) + timedelta(seconds=1)), shift.end)
    trend = log.trend(shift.start, until, bucket_s=bucket_s, score_bins=score_bins)
    threshold = trend.threshold
    if threshold is None:
        before = log.find(until=shift.start, verdicts=(Verdict.GOOD, Verdict.BAD), limit=1)
        threshold = before[0].threshold if before else None
    return ShiftTrends(station=log.station, shift=shift, until=until, trend=trend, threshold=threshold)
