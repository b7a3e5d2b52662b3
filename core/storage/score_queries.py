"""Scores of a station's parts with the truth reviews give them: what a threshold's what-if reads.

One query returns every inspected part's score in a time range with the verdict of its newest
review (``core.reports.whatif`` judges them again at two thresholds), as arrays rather than
``Decision`` objects, so that a week of parts is read in a second, not a minute; a second
query lists the parts whose score lies in a band (those that would change verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement

from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.schema import DecisionRow, ReviewRow

# ``ScoreSample.truth`` codes.
GOOD, BAD, UNREVIEWED = 0, 1, -1


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreSample:
    """Inspected parts of a range: scores, and what reviews say they are (``GOOD``, ``BAD``, ``UNREVIEWED``)."""

    scores: np.ndarray  # float64
    truth: np.ndarray  # int8, one code per score
    not_inspected: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BandPart:
    """A part whose score lies in a band, with its truth code and picture."""

    part_id: str
    score: float
    truth: int
    image_path: str | None
    created_at: datetime


def _newest_review() -> ColumnElement[str | None]:
    # Reviews of a part join the chain of its station in order: the highest seq is the newest.
    return (
        select(ReviewRow.verdict)
        .where(ReviewRow.part_id == DecisionRow.part_id)
        .order_by(ReviewRow.seq.desc())
        .limit(1)
        .correlate(DecisionRow)
        .scalar_subquery()
    )


def _code(verdict: str | None) -> int:
    return GOOD if verdict == "good" else BAD if verdict == "bad" else UNREVIEWED


def score_sample(context: LogContext, since: datetime, until: datetime) -> ScoreSample:
    """This station's inspected parts in ``[since, until)``: scores and truth codes."""
    d = DecisionRow
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return ScoreSample(scores=np.zeros(0), truth=np.zeros(0, dtype=np.int8), not_inspected=0)
        window = (d.station_id == station_id, d.created_at >= since, d.created_at < until)
        rows = session.execute(select(d.score, _newest_review()).where(*window, d.score.is_not(None))).all()
        not_inspected = session.scalar(select(func.count()).select_from(d).where(*window, d.score.is_(None)))
    scores = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))
    truth = np.fromiter((_code(r[1]) for r in rows), dtype=np.int8, count=len(rows))
    return ScoreSample(scores=scores, truth=truth, not_inspected=int(not_inspected or 0))


def parts_in_band(
    context: LogContext, since: datetime, until: datetime, low: float, high: float, limit: int
) -> list[BandPart]:
    """This station's parts in ``[since, until)`` with ``low <= score < high``, oldest first, at most ``limit``."""
    d = DecisionRow
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return []
        query = (
            select(d.part_id, d.score, _newest_review(), d.image_path, d.created_at)
            .where(d.station_id == station_id, d.created_at >= since, d.created_at < until)
            .where(d.score >= low, d.score < high)
            .order_by(d.created_at)
            .limit(limit)
        )
        return [
            BandPart(part_id=p, score=float(s or 0.0), truth=_code(v), image_path=i, created_at=at)
            for p, s, v, i, at in session.execute(query)
        ]
