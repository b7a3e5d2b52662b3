"""Reading decisions: one part, filtered pages, counts per verdict and per hour, a shift's records.

Every query but ``get`` is scoped to the log's station and runs on an index (a test checks the
plans on SQLite). Rows are read as plain columns and turned into ``Decision``s: loading ORM
objects would cost ten times more per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from core.common.types import Decision, Verdict
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.records import DecisionRecord, HourCount
from core.storage.reviews import reviews_where
from core.storage.schema import DecisionRow, ModelVersion, ReviewRow, Station

# A score band, newest first, on SQLite: first look among this many newest decisions (the time
# index); only a band too sparse to fill the page there falls back to the score index. SQLite's
# planner cannot tell a wide band from a narrow one and would sort the whole band.
_BAND_PROBE = 5000


def _decision_columns(d: Any) -> Select[Any]:
    """Decisions (of ``DecisionRow`` or an alias of it) with their station's name and model's hash."""
    return (
        select(
            d.part_id,
            Station.name,
            d.source_ref,
            d.created_at,
            d.content_hash,
            d.verdict,
            d.score,
            d.threshold,
            d.reason,
            d.latency_ms,
            ModelVersion.hash,
            d.image_path,
            d.heatmap_path,
            d.anomaly_score,  # the good-only second opinion (revision 0007)
            d.anomaly_threshold,
            d.fired,
        )
        .join(Station, d.station_id == Station.id)
        .outerjoin(ModelVersion, d.model_version_id == ModelVersion.id)
    )


_DECISIONS = _decision_columns(DecisionRow)  # built once
_DECISION_WIDTH = 16


def _filtered(
    query: Any,
    station_id: int,
    since: datetime | None,
    until: datetime | None,
    verdicts: Iterable[Verdict] | None,
    score_min: float | None,
    score_max: float | None,
) -> Any:
    query = query.where(DecisionRow.station_id == station_id)
    if since is not None:
        query = query.where(DecisionRow.created_at >= since)
    if until is not None:
        query = query.where(DecisionRow.created_at < until)
    if verdicts is not None:
        query = query.where(DecisionRow.verdict.in_([Verdict(v).value for v in verdicts]))
    if score_min is not None:
        query = query.where(DecisionRow.score >= score_min)
    if score_max is not None:
        query = query.where(DecisionRow.score < score_max)
    return query


def _to_decision(row: Sequence[Any]) -> Decision:
    (part_id, station, source_ref, created_at, content_hash, verdict, score, threshold, reason,
     latency_ms, model_hash, image_path, heatmap_path, anomaly_score, anomaly_threshold,
     fired) = row[:_DECISION_WIDTH]  # fmt: skip
    return Decision(
        part_id=part_id,
        station=station,
        source_ref=source_ref,
        created_at=created_at,
        content_hash=content_hash,
        verdict=Verdict(verdict),
        score=score,
        threshold=threshold,
        reason=reason,
        latency_ms=latency_ms,
        model_hash=model_hash,
        image_path=image_path,
        heatmap_path=heatmap_path,
        anomaly_score=anomaly_score,
        anomaly_threshold=anomaly_threshold,
        fired=fired,
    )


def get(context: LogContext, part_id: str) -> Decision | None:
    """The decision about one part, from any station, or None."""
    with environment_errors(context.where), context.sessions() as session:
        result = session.execute(_DECISIONS.where(DecisionRow.part_id == part_id)).first()
    return None if result is None else _to_decision(result)


def find_by_content_hash(context: LogContext, content_hash: str) -> list[Decision]:
    """The station's decisions about these bytes, oldest first (see ``VisualLog.find_by_content_hash``)."""
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return []
        query = (
            _DECISIONS.where(DecisionRow.station_id == station_id)
            .where(DecisionRow.content_hash == content_hash)
            .order_by(DecisionRow.created_at, DecisionRow.part_id)
        )
        return [_to_decision(row) for row in session.execute(query)]


def find(
    context: LogContext,
    *,
    since: datetime | None,
    until: datetime | None,
    verdicts: Iterable[Verdict] | None,
    score_min: float | None,
    score_max: float | None,
    limit: int | None,
    newest_first: bool,
) -> list[Decision]:
    """The station's decisions matching every filter given (see ``VisualLog.find``)."""
    if limit is not None and limit <= 0:
        return []
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return []
        newest = (DecisionRow.created_at.desc(), DecisionRow.part_id.desc())
        order = newest if newest_first else (DecisionRow.created_at, DecisionRow.part_id)
        query = _filtered(_DECISIONS, station_id, since, until, verdicts, score_min, score_max).order_by(
            *order
        )
        if limit is not None:
            query = query.limit(limit)
        banded = score_min is not None or score_max is not None
        if banded and newest_first and limit is not None and session.get_bind().dialect.name == "sqlite":
            # A derived table, so that the newest decisions drive the query, not the score index.
            recent = aliased(
                DecisionRow,
                _filtered(select(DecisionRow), station_id, since, until, verdicts, None, None)
                .order_by(*newest)
                .limit(max(_BAND_PROBE, 10 * limit))
                .subquery(),
            )
            probe = _decision_columns(recent).order_by(recent.created_at.desc(), recent.part_id.desc())
            if score_min is not None:
                probe = probe.where(recent.score >= score_min)
            if score_max is not None:
                probe = probe.where(recent.score < score_max)
            found = [_to_decision(row) for row in session.execute(probe.limit(limit))]
            if len(found) == limit:  # the newest matches all lie among the newest decisions
                return found
        return [_to_decision(row) for row in session.execute(query)]


def counts(context: LogContext, since: datetime | None, until: datetime | None) -> dict[Verdict, int]:
    """The station's decisions per verdict in ``[since, until)``; every verdict is a key."""
    totals = dict.fromkeys(Verdict, 0)
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return totals
        query = _filtered(
            select(DecisionRow.verdict, func.count()), station_id, since, until, None, None, None
        ).group_by(DecisionRow.verdict)
        for verdict, number in session.execute(query):
            totals[Verdict(verdict)] = int(number)
    return totals


def counts_per_hour(context: LogContext, since: datetime, until: datetime) -> list[HourCount]:
    """Decisions per verdict for each UTC hour in ``[since, until)`` that has any, oldest first."""
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return []
        if session.get_bind().dialect.name == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS.ffffff" UTC text
            hour: Any = func.substr(DecisionRow.created_at, 1, 13)
        else:
            hour = func.date_trunc("hour", func.timezone("UTC", DecisionRow.created_at))
        query = _filtered(
            select(hour.label("hour"), DecisionRow.verdict, func.count()),
            station_id,
            since,
            until,
            None,
            None,
            None,
        ).group_by(hour, DecisionRow.verdict)
        buckets: dict[datetime, dict[Verdict, int]] = {}
        for bucket, verdict, number in session.execute(query):
            start = (datetime.strptime(bucket, "%Y-%m-%d %H") if isinstance(bucket, str) else bucket).replace(
                tzinfo=UTC
            )
            buckets.setdefault(start, dict.fromkeys(Verdict, 0))[Verdict(verdict)] = int(number)
    return [
        HourCount(
            hour=start, good=c[Verdict.GOOD], bad=c[Verdict.BAD], not_inspected=c[Verdict.NOT_INSPECTED]
        )
        for start, c in sorted(buckets.items())
    ]


def records(context: LogContext, since: datetime, until: datetime) -> Iterator[DecisionRecord]:
    """The station's decisions in ``[since, until)`` with model name and newest review, streamed."""
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return
        reviews = {
            review.part_id: review
            for review in reviews_where(
                session,
                select(ReviewRow.id)
                .join(DecisionRow, ReviewRow.part_id == DecisionRow.part_id)
                .where(
                    DecisionRow.station_id == station_id,
                    DecisionRow.created_at >= since,
                    DecisionRow.created_at < until,
                ),
            )
        }  # ordered by seq: the newest review of a part wins
        query = _filtered(
            _DECISIONS.add_columns(DecisionRow.seq, ModelVersion.name),
            station_id,
            since,
            until,
            None,
            None,
            None,
        ).order_by(DecisionRow.created_at, DecisionRow.part_id)
        # Closed even when the caller stops early (a server-side cursor on PostgreSQL).
        with session.execute(query, execution_options={"yield_per": 2000}) as rows:
            for row in rows:
                decision = _to_decision(row)
                seq, model_name = row[_DECISION_WIDTH:]
                yield DecisionRecord(
                    decision=decision, seq=seq, model_name=model_name, review=reviews.get(decision.part_id)
                )


def stations(context: LogContext) -> list[str]:
    """Names of every station in the database."""
    with environment_errors(context.where), context.sessions() as session:
        return list(session.scalars(select(Station.name).order_by(Station.name)))
