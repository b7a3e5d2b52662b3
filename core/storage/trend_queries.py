"""Trends of a station over a time span: verdicts, latency and scores per interval, in SQL.

What the station window's trend page plots (``core.reports.trends`` puts it on a shift): for
each interval of ``bucket_s`` seconds the decisions per verdict and the inspection latency, and
over the whole span the distribution of scores by verdict and the threshold in force at its end.
The grouping runs in the database, so a shift of a fast line costs a few grouped index scans
and not a row per part.

Intervals start at ``since`` floored to a whole second; a decision belongs to the interval its
time stamp falls in, counted in whole seconds (both backends drop the fraction the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, extract, func, select

from core.common.types import Verdict
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.schema import DecisionRow

MAX_BUCKETS = 2000  # a trend wider than this many intervals is a mistake in the caller


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendBucket:
    """One interval of a trend.

    Attributes:
        start: Start of the interval, UTC.
        duration_s: Its length in seconds; the last one ends at the trend's ``until``.
        good, bad, not_inspected: Decisions per verdict.
        latency_mean_ms: Mean inspection latency of the interval's parts that have one.
        latency_max_ms: The longest of those.
    """

    start: datetime
    duration_s: float
    good: int
    bad: int
    not_inspected: int
    latency_mean_ms: float | None
    latency_max_ms: float | None

    @property
    def inspected(self) -> int:
        return self.good + self.bad

    @property
    def total(self) -> int:
        return self.good + self.bad + self.not_inspected

    @property
    def bad_rate(self) -> float | None:
        """Bad parts per inspected part, 0..1; None when nothing was inspected."""
        return self.bad / self.inspected if self.inspected else None

    @property
    def parts_per_min(self) -> float:
        """Parts that arrived per minute (every verdict), over the interval's length."""
        return 60.0 * self.total / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreDistribution:
    """Scores of the inspected parts in equal bins over 0..1, by verdict.

    Attributes:
        edges: ``bins + 1`` bin edges from 0 to 1; a score of exactly 1 is in the last bin.
        good, bad: Parts per bin.
    """

    edges: tuple[float, ...]
    good: tuple[int, ...]
    bad: tuple[int, ...]

    @property
    def bins(self) -> int:
        return len(self.good)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trend:
    """A station's trend over ``[since, until)``.

    Attributes:
        since, until: The span, UTC (``since`` floored to a whole second).
        bucket_s: Length of each interval in seconds.
        buckets: Every interval of the span in order, empty ones included.
        scores: The score distribution over the whole span.
        threshold: The threshold of the newest inspected part of the span, or None.
    """

    since: datetime
    until: datetime
    bucket_s: int
    buckets: tuple[TrendBucket, ...]
    scores: ScoreDistribution
    threshold: float | None

    @property
    def total(self) -> int:
        return sum(b.total for b in self.buckets)


def trend(context: LogContext, since: datetime, until: datetime, *, bucket_s: int, score_bins: int) -> Trend:
    """The station's trend over ``[since, until)`` (see ``VisualLog.trend``).

    Raises:
        ValueError: A naive time, an empty span, a bucket under one second, no bins, or more
            than ``MAX_BUCKETS`` intervals.
        StorageError: The database cannot be read.
    """
    for moment in (since, until):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("give timezone-aware times")
    since = since.astimezone(UTC).replace(microsecond=0)
    until = until.astimezone(UTC)
    if until <= since:
        raise ValueError(f"the span {since} .. {until} is empty")
    if bucket_s < 1 or score_bins < 1:
        raise ValueError("bucket_s and score_bins must be at least 1")
    count = math.ceil((until - since).total_seconds() / bucket_s)
    if count > MAX_BUCKETS:
        raise ValueError(f"{count} intervals of {bucket_s} s: at most {MAX_BUCKETS}; choose longer ones")
    since_epoch = int(since.timestamp())
    per_bucket: dict[int, tuple[dict[Verdict, int], float | None, float | None]] = {}
    good_bins = [0] * score_bins
    bad_bins = [0] * score_bins
    threshold: float | None = None
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is not None:
            sqlite = session.get_bind().dialect.name == "sqlite"
            in_span = (
                DecisionRow.station_id == station_id,
                DecisionRow.created_at >= since,
                DecisionRow.created_at < until,
            )
            index = _bucket_index(sqlite, since_epoch, bucket_s).label("bucket")
            rows = session.execute(
                select(
                    index,
                    DecisionRow.verdict,
                    func.count(),
                    func.avg(DecisionRow.latency_ms),
                    func.max(DecisionRow.latency_ms),
                )
                .where(*in_span)
                .group_by(index, DecisionRow.verdict)
            )
            latency: dict[int, list[tuple[int, float, float]]] = {}
            for number, verdict, n, mean_ms, max_ms in rows:
                counts, _, _ = per_bucket.setdefault(int(number), (dict.fromkeys(Verdict, 0), None, None))
                counts[Verdict(verdict)] = int(n)
                if mean_ms is not None:
                    latency.setdefault(int(number), []).append((int(n), float(mean_ms), float(max_ms)))
            for number, (counts, _, _) in list(per_bucket.items()):
                parts = latency.get(number)
                if parts:
                    # The verdicts' means weighted by their parts: latency is set on every
                    # inspected part, and a not-inspected one has none.
                    weight = sum(n for n, _, _ in parts)
                    weighted = sum(n * m for n, m, _ in parts) / weight
                    per_bucket[number] = (counts, weighted, max(x for _, _, x in parts))
            score_bin = _score_bin(sqlite, score_bins).label("bin")
            for number, verdict, n in session.execute(
                select(score_bin, DecisionRow.verdict, func.count())
                .where(*in_span, DecisionRow.score.is_not(None))
                .group_by(score_bin, DecisionRow.verdict)
            ):
                target = bad_bins if verdict == Verdict.BAD.value else good_bins
                target[min(max(int(number), 0), score_bins - 1)] += int(n)
            threshold = session.scalar(
                select(DecisionRow.threshold)
                .where(*in_span, DecisionRow.threshold.is_not(None))
                .order_by(DecisionRow.created_at.desc(), DecisionRow.part_id.desc())
                .limit(1)
            )
    buckets = []
    for number in range(count):
        start = since + timedelta(seconds=number * bucket_s)
        end = min(start + timedelta(seconds=bucket_s), until)
        counts, mean, longest = per_bucket.get(number, (dict.fromkeys(Verdict, 0), None, None))
        buckets.append(
            TrendBucket(
                start=start,
                duration_s=(end - start).total_seconds(),
                good=counts[Verdict.GOOD],
                bad=counts[Verdict.BAD],
                not_inspected=counts[Verdict.NOT_INSPECTED],
                latency_mean_ms=mean,
                latency_max_ms=longest,
            )
        )
    return Trend(
        since=since,
        until=until,
        bucket_s=bucket_s,
        buckets=tuple(buckets),
        scores=ScoreDistribution(
            edges=tuple(i / score_bins for i in range(score_bins + 1)),
            good=tuple(good_bins),
            bad=tuple(bad_bins),
        ),
        threshold=None if threshold is None else float(threshold),
    )


def _bucket_index(sqlite: bool, since_epoch: int, bucket_s: int) -> Any:
    """The interval number of a decision: whole seconds since ``since``, divided (integers)."""
    if sqlite:
        # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" UTC text. The fraction is cut off as text first:
        # SQLite's date functions round to milliseconds, which moves 06:09:59.9999 to 06:10.
        seconds: Any = cast(func.strftime("%s", func.substr(DecisionRow.created_at, 1, 19)), Integer)
    else:
        seconds = cast(func.floor(extract("epoch", DecisionRow.created_at)), Integer)
    # Integers, never negative: floor division is the integer division of both backends.
    return (seconds - since_epoch) // bucket_s


def _score_bin(sqlite: bool, bins: int) -> Any:
    """The score's bin number (a score of 1 gives ``bins``; the caller folds it into the last)."""
    if sqlite:  # CAST truncates, which is floor for scores >= 0
        return cast(DecisionRow.score * bins, Integer)
    return cast(func.floor(DecisionRow.score * bins), Integer)
