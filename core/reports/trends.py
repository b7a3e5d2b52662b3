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
from core.storage.trend_queries import ScoreDistribution, Trend

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


class ShiftTrendsFollower:
    """``shift_trends`` for a page that asks every few seconds: ended intervals are read once.

    The intervals of the shift that have ended do not change (a decision is stamped when it is
    recorded), so they are kept, and each call reads only the intervals that ended since the last
    call and the one still open: a few minutes of parts instead of the whole shift. A new shift
    (or another plan) starts from nothing. The result equals ``shift_trends`` at the same moment.

    Args:
        plan: The shift plan; default the one stored in the log (looked up at each call).
        bucket_s: Length of an interval in seconds.
        score_bins: Bins of the score distribution over 0..1.
    """

    def __init__(
        self,
        *,
        plan: ShiftPlan | None = None,
        bucket_s: int = DEFAULT_BUCKET_S,
        score_bins: int = DEFAULT_SCORE_BINS,
    ) -> None:
        self.plan = plan
        self.bucket_s = bucket_s
        self.score_bins = score_bins
        self._shift: Shift | None = None
        self._closed: Trend | None = None  # the shift's ended intervals, from its start

    def read(self, log: VisualLog, now: datetime | None = None) -> ShiftTrends:
        """The trends of the shift that covers ``now`` (default: the log's clock), up to ``now``.

        Raises:
            StorageError: The log cannot be read.
        """
        now = log.now() if now is None else now
        plan = shift_plan_of(log) if self.plan is None else self.plan
        shift = plan.shift_at(now)
        since = shift.start.replace(microsecond=0)
        until = min(max(now, since + timedelta(seconds=1)), shift.end)
        if shift != self._shift:
            self._shift, self._closed = shift, None
        ended = int((until - since).total_seconds() // self.bucket_s)
        boundary = since + timedelta(seconds=ended * self.bucket_s)
        if boundary >= until:  # keep one interval open, so that the open span is never empty
            boundary -= timedelta(seconds=self.bucket_s)
        if boundary <= since:
            self._closed = None
            trend = self._trend(log, since, until)
        else:
            if self._closed is None or self._closed.until > boundary:
                self._closed = self._trend(log, since, boundary)
            elif self._closed.until < boundary:
                self._closed = merge_trends(self._closed, self._trend(log, self._closed.until, boundary))
            trend = merge_trends(self._closed, self._trend(log, boundary, until))
        threshold = trend.threshold
        if threshold is None:
            before = log.find(until=shift.start, verdicts=(Verdict.GOOD, Verdict.BAD), limit=1)
            threshold = before[0].threshold if before else None
        return ShiftTrends(station=log.station, shift=shift, until=until, trend=trend, threshold=threshold)

    def _trend(self, log: VisualLog, since: datetime, until: datetime) -> Trend:
        return log.trend(since, until, bucket_s=self.bucket_s, score_bins=self.score_bins)


def merge_trends(first: Trend, then: Trend) -> Trend:
    """One trend of two adjacent ones (``first`` ends where ``then`` starts, on its interval grid).

    Raises:
        ValueError: The trends are not adjacent or not alike.
    """
    if (
        first.until != then.since
        or first.bucket_s != then.bucket_s
        or first.scores.edges != then.scores.edges
    ):
        raise ValueError("only adjacent trends of the same intervals and bins can be merged")
    if first.buckets and first.buckets[-1].duration_s != first.bucket_s:
        raise ValueError("the first trend ends inside an interval")
    return Trend(
        since=first.since,
        until=then.until,
        bucket_s=first.bucket_s,
        buckets=first.buckets + then.buckets,
        scores=ScoreDistribution(
            edges=first.scores.edges,
            good=tuple(a + b for a, b in zip(first.scores.good, then.scores.good, strict=True)),
            bad=tuple(a + b for a, b in zip(first.scores.bad, then.scores.bad, strict=True)),
        ),
        threshold=then.threshold if then.threshold is not None else first.threshold,
    )
