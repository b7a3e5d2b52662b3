"""Retention: old decisions leave the log in two steps, files first, then rows.

Which decisions may go:
- never one marked to keep (``VisualLog.keep`` or ``record(..., keep=True)``) or one that has a
  review (a supervisor looked at it: it is evidence);
- by age, per verdict: good parts after ``good_days``, not-inspected ones after
  ``not_inspected_days``, bad parts after ``bad_days`` (the longest by default);
- by disk budget, when the media files exceed ``max_media_bytes`` or the media drive has less
  than ``min_free_bytes`` free: the oldest good parts first, then not-inspected, then bad ones.

Each verdict's selection becomes a cut-off time ("good parts before T"), recorded as a
*retention run* before anything is deleted. Then, a chunk at a time in chain order, the chunk's
image and heatmap files are deleted, and in one transaction its rows are recorded as pruned
ranges (with the hash of each range's last link, the checkpoint the verifier resumes from, and
the time of its newest decision) and deleted. The append-only trigger lets a decision go only
once such a range covers it and the range's run justifies it: the run's cut-off for the
decision's verdict is later than the decision and older than the minimum age the database
allows (``schema.MIN_AGE_DAYS``, by the database's clock). Cut-offs are clamped to that minimum
here, so no policy or disk budget asks the database for a delete it refuses.

A run interrupted between the two steps leaves rows whose files are gone; the next run applies
at least the cut-offs of every earlier run, so it removes those rows first.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, false, func, insert, or_, select

from core.common.types import Verdict
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.media import media_path, remove_empty_folders
from core.storage.schema import (
    MIN_AGE_DAYS,
    DecisionRow,
    KeepMarkRow,
    PrunedRangeRow,
    RetentionRunRow,
    ReviewRow,
)

_log = logging.getLogger(__name__)

_CHUNK = 1000  # decisions per delete transaction
# Clamped cut-offs stay this far inside the database's minimum age, so a few seconds between the
# station's clock and the database server's never make the trigger refuse a run's delete.
_CLOCK_MARGIN = timedelta(minutes=1)
_PRUNE_ORDER = (Verdict.GOOD, Verdict.NOT_INSPECTED, Verdict.BAD)  # under a disk budget
_CUTOFF_COLUMNS = {
    Verdict.GOOD: "good_before",
    Verdict.BAD: "bad_before",
    Verdict.NOT_INSPECTED: "not_inspected_before",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """How long decisions stay, and how much disk their files may use.

    Ages are in days; None means never by age. Byte limits are None when not used.
    """

    good_days: float | None = 30.0
    not_inspected_days: float | None = 90.0
    bad_days: float | None = 365.0
    max_media_bytes: int | None = None
    min_free_bytes: int | None = None

    def max_age(self, verdict: Verdict) -> timedelta | None:
        days = {
            Verdict.GOOD: self.good_days,
            Verdict.NOT_INSPECTED: self.not_inspected_days,
            Verdict.BAD: self.bad_days,
        }[verdict]
        return None if days is None else timedelta(days=days)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionResult:
    """What a retention run removed (or, with ``dry_run``, would remove)."""

    run_id: int | None  # None when nothing was due, or on a dry run
    decisions: int
    files: int
    media_bytes: int  # bytes of the removed decisions' media, as recorded when written
    ranges: int  # pruned ranges recorded (checkpoints of the chain)
    cutoffs: dict[Verdict, datetime | None] = field(default_factory=dict)
    dry_run: bool = False


def apply_retention(
    context: LogContext,
    policy: RetentionPolicy,
    *,
    user: str,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Remove the decisions of the log's station that the policy no longer keeps.

    Args:
        context: The station's open visual log (its media root is the one cleaned).
        policy: Ages and disk budget.
        user: Who runs it (a name recorded with the run; a scheduler may pass ``retention``).
        now: The time the ages count from (default: the log's clock).
        dry_run: Only count what would be removed.

    Raises:
        StorageError: The database or the media drive refused; what was removed stays removed,
            and the next run finishes the job.
    """
    now = context.now() if now is None else now
    where = context.where
    with environment_errors(where), context.engine.connect() as connection:
        station_id = context.find_station_id(connection)
        if station_id is None:
            return RetentionResult(
                run_id=None, decisions=0, files=0, media_bytes=0, ranges=0, dry_run=dry_run
            )
        cutoffs = _cutoffs(connection, station_id, policy, now)
        with environment_errors(str(context.media_root)):
            cutoffs = _apply_budget(connection, station_id, policy, cutoffs, context.media_root)
        cutoffs = _clamped(cutoffs, now)
        due = _due(station_id, cutoffs)
        number, media_bytes = connection.execute(
            select(func.count(), func.coalesce(func.sum(DecisionRow.media_bytes), 0)).where(due)
        ).one()
    if dry_run or not number:
        return RetentionResult(
            run_id=None,
            decisions=int(number) if dry_run else 0,
            files=0,
            media_bytes=int(media_bytes) if dry_run else 0,
            ranges=0,
            cutoffs=cutoffs,
            dry_run=dry_run,
        )

    reason = _describe(policy)
    with environment_errors(where), context.writer.begin() as connection:
        key = connection.execute(
            insert(RetentionRunRow).values(
                station_id=station_id,
                created_at=now,
                user=user,
                reason=reason,
                **{_CUTOFF_COLUMNS[v]: c for v, c in cutoffs.items()},
            )
        ).inserted_primary_key
        assert key is not None
        run_id = int(key[0])
    _log.info("retention run %s for %s: %s", run_id, context.station, reason)

    decisions = files = freed = ranges = 0
    after_seq = 0
    touched: set[Path] = set()
    while True:
        with environment_errors(where), context.engine.connect() as connection:
            chunk = connection.execute(
                select(
                    DecisionRow.part_id,
                    DecisionRow.seq,
                    DecisionRow.image_path,
                    DecisionRow.heatmap_path,
                    DecisionRow.media_bytes,
                )
                .where(due, DecisionRow.seq > after_seq)
                .order_by(DecisionRow.seq)
                .limit(_CHUNK)
            ).all()
        if not chunk:
            break
        after_seq = chunk[-1].seq
        # Step 1: the files. A crash after this leaves rows without files, which the next run removes.
        with environment_errors(str(context.media_root)):
            for row in chunk:
                for relative in (row.image_path, row.heatmap_path):
                    if relative is not None:
                        path = media_path(context.media_root, relative)
                        try:
                            path.unlink()
                        except FileNotFoundError:
                            continue
                        files += 1
                        touched.add(path.parent)
        # Step 2: the rows, as recorded pruned ranges, in one transaction.
        with environment_errors(where), context.writer.begin() as connection:
            ids = [row.part_id for row in chunk]
            if connection.dialect.name == "postgresql":
                # Lock them, so a review being added now waits and cannot lose its decision.
                connection.execute(
                    select(DecisionRow.part_id).where(DecisionRow.part_id.in_(ids)).with_for_update()
                )
            still_due = connection.execute(
                select(
                    DecisionRow.part_id,
                    DecisionRow.seq,
                    DecisionRow.row_hash,
                    DecisionRow.media_bytes,
                    DecisionRow.created_at,
                )
                .where(due, DecisionRow.part_id.in_(ids))
                .order_by(DecisionRow.seq)
            ).all()
            spans = list(_contiguous([(row.seq, row.row_hash, row.created_at) for row in still_due]))
            if spans:
                connection.execute(
                    insert(PrunedRangeRow),
                    [
                        {
                            "station_id": station_id,
                            "first_seq": a,
                            "last_seq": b,
                            "last_hash": h,
                            "run_id": run_id,
                            "newest_at": newest,
                        }
                        for a, b, h, newest in spans
                    ],
                )
                connection.execute(
                    delete(DecisionRow).where(DecisionRow.part_id.in_([r.part_id for r in still_due]))
                )
        decisions += len(still_due)
        freed += sum(row.media_bytes for row in still_due)
        ranges += len(spans)
    remove_empty_folders(touched, context.media_root)
    return RetentionResult(
        run_id=run_id, decisions=decisions, files=files, media_bytes=freed, ranges=ranges, cutoffs=cutoffs
    )


def _due(station_id: int, cutoffs: dict[Verdict, datetime | None]) -> ColumnElement[bool]:
    by_age = [
        and_(DecisionRow.verdict == verdict.value, DecisionRow.created_at < cutoff)
        for verdict, cutoff in cutoffs.items()
        if cutoff is not None
    ]
    return and_(
        DecisionRow.station_id == station_id,
        or_(*by_age) if by_age else false(),
        ~exists().where(KeepMarkRow.part_id == DecisionRow.part_id),
        ~exists().where(ReviewRow.part_id == DecisionRow.part_id),
    )


def _cutoffs(
    connection: Any, station_id: int, policy: RetentionPolicy, now: datetime
) -> dict[Verdict, datetime | None]:
    cutoffs: dict[Verdict, datetime | None] = {}
    for verdict in Verdict:
        age = policy.max_age(verdict)
        cutoffs[verdict] = None if age is None else now - age
    # Earlier runs' cut-offs still hold: an interrupted run is finished by this one.
    r = RetentionRunRow
    earlier = connection.execute(
        select(func.max(r.good_before), func.max(r.bad_before), func.max(r.not_inspected_before)).where(
            r.station_id == station_id
        )
    ).one()
    for verdict, previous in zip((Verdict.GOOD, Verdict.BAD, Verdict.NOT_INSPECTED), earlier, strict=True):
        if previous is not None:
            previous = _as_utc(previous)
            current = cutoffs[verdict]
            cutoffs[verdict] = previous if current is None else max(current, previous)
    return cutoffs


def _apply_budget(
    connection: Any,
    station_id: int,
    policy: RetentionPolicy,
    cutoffs: dict[Verdict, datetime | None],
    media_root: Path,
) -> dict[Verdict, datetime | None]:
    """Move cut-offs later until enough media bytes go to meet the disk budget."""
    to_free = 0
    if policy.max_media_bytes is not None:
        total = connection.scalar(
            select(func.coalesce(func.sum(DecisionRow.media_bytes), 0)).where(
                DecisionRow.station_id == station_id
            )
        )
        to_free = max(to_free, int(total) - policy.max_media_bytes)
    if policy.min_free_bytes is not None:
        to_free = max(to_free, policy.min_free_bytes - shutil.disk_usage(media_root).free)
    if to_free <= 0:
        return cutoffs
    to_free -= int(
        connection.scalar(
            select(func.coalesce(func.sum(DecisionRow.media_bytes), 0)).where(_due(station_id, cutoffs))
        )
    )
    cutoffs = dict(cutoffs)
    for verdict in _PRUNE_ORDER:
        if to_free <= 0:
            break
        current = cutoffs[verdict]
        query = (
            select(DecisionRow.created_at, DecisionRow.media_bytes)
            .where(DecisionRow.station_id == station_id, DecisionRow.verdict == verdict.value)
            .where(~exists().where(KeepMarkRow.part_id == DecisionRow.part_id))
            .where(~exists().where(ReviewRow.part_id == DecisionRow.part_id))
            .order_by(DecisionRow.created_at)
        )
        if current is not None:
            query = query.where(DecisionRow.created_at >= current)
        with connection.execution_options(yield_per=2000).execute(query) as rows:
            for created_at, media_bytes in rows:
                to_free -= int(media_bytes)
                cutoffs[verdict] = _as_utc(created_at) + timedelta(microseconds=1)
                if to_free <= 0:
                    break
    return cutoffs


def _contiguous(links: list[tuple[int, str, datetime]]) -> Iterator[tuple[int, int, str, datetime]]:
    """Runs of consecutive sequence numbers as (first, last, hash of last, newest time)."""
    first = previous = newest = None
    last_hash = ""
    for seq, row_hash, created_at in links:
        if previous is not None and seq != previous + 1:
            assert first is not None and newest is not None
            yield first, previous, last_hash, newest
            first = newest = None
        if first is None:
            first = seq
        previous, last_hash = seq, row_hash
        newest = created_at if newest is None else max(newest, created_at)
    if first is not None and previous is not None and newest is not None:
        yield first, previous, last_hash, newest


def min_age(verdict: Verdict) -> timedelta:
    """How long the database keeps a decision of this verdict at least, whatever the policy."""
    return timedelta(days=MIN_AGE_DAYS[verdict.value])


def _clamped(cutoffs: dict[Verdict, datetime | None], now: datetime) -> dict[Verdict, datetime | None]:
    """Cut-offs no later than the database's minimum ages allow (by its clock, not the log's)."""
    # ``now`` may be a test's or a replay's clock, ahead of the wall clock the database goes by.
    reference = min(now, datetime.now(UTC) - _CLOCK_MARGIN)
    clamped: dict[Verdict, datetime | None] = {}
    for verdict, cutoff in cutoffs.items():
        limit = reference - min_age(verdict)
        if cutoff is not None and cutoff > limit:
            _log.warning(
                "retention: %s parts are kept at least %s; cut-off %s moved to %s",
                verdict.value,
                min_age(verdict),
                cutoff.isoformat(timespec="seconds"),
                limit.isoformat(timespec="seconds"),
            )
            cutoff = limit
        clamped[verdict] = cutoff
    return clamped


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _describe(policy: RetentionPolicy) -> str:
    parts = []
    for verdict in (Verdict.GOOD, Verdict.NOT_INSPECTED, Verdict.BAD):
        age = policy.max_age(verdict)
        parts.append(
            f"{verdict.value} after {age.total_seconds() / 86400:g} days" if age else f"{verdict.value} kept"
        )
    if policy.max_media_bytes is not None:
        parts.append(f"media at most {policy.max_media_bytes} bytes")
    if policy.min_free_bytes is not None:
        parts.append(f"at least {policy.min_free_bytes} bytes free")
    return "; ".join(parts)
