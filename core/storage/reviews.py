"""Reviews and keep marks: a supervisor's word on a decision, stored beside it, never over it.

A review confirms or overrides a decision's verdict and is appended to the chain of the
decision's station (which may be another station sharing the database). A keep mark protects a
decision, with its image and heatmap, from retention.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from core.common.types import Verdict
from core.storage.auth import Actor, Permission, require
from core.storage.chain import review_hash
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.heads import append
from core.storage.records import Review, ReviewOutcome
from core.storage.schema import DecisionRow, KeepMarkRow, ReviewRow, Station, UserRow


def review(context: LogContext, part_id: str, verdict: Verdict, actor: Actor, comment: str | None) -> Review:
    """Append a supervisor's review of a decision (see ``VisualLog.review``).

    Raises:
        KeyError: No decision with this part id.
        NotAllowedError: ``actor`` may not review (recorded).
        ValueError: ``verdict`` is not good or bad.
        StorageError: The database refused; nothing is recorded.
    """
    verdict = Verdict(verdict)
    if verdict is Verdict.NOT_INSPECTED:
        raise ValueError("a review says whether the part is good or bad")
    with environment_errors(context.where):
        user_id = require(context, actor, Permission.REVIEW)
        user = actor.name
        created_at = context.now()
        with context.sessions() as session:
            found = session.execute(
                select(DecisionRow.verdict, DecisionRow.station_id, Station.name)
                .join(Station, DecisionRow.station_id == Station.id)
                .where(DecisionRow.part_id == part_id)
            ).first()
        if found is None:
            raise KeyError(f"no decision about part {part_id} in the visual log")
        original, station_id, station = found
        outcome = ReviewOutcome.CONFIRMED if original == verdict.value else ReviewOutcome.OVERRIDDEN
        values = {
            "station_id": station_id,
            "created_at": created_at,
            "part_id": part_id,
            "user_id": user_id,
            "verdict": verdict.value,
            "outcome": outcome.value,
            "comment": comment,
        }
        seq, _ = append(
            context,
            station_id,
            ReviewRow,
            values,
            lambda seq, previous: review_hash(
                previous,
                station=station,
                seq=seq,
                created_at=created_at,
                part_id=part_id,
                user=user,
                verdict=verdict.value,
                outcome=outcome.value,
                comment=comment,
            ),
        )
    return Review(
        station=station,
        seq=seq,
        created_at=created_at,
        part_id=part_id,
        user=user,
        verdict=verdict,
        outcome=outcome,
        comment=comment,
    )


def keep(context: LogContext, part_id: str, actor: Actor, reason: str) -> None:
    """Mark a decision so that retention never removes it (see ``VisualLog.keep``).

    Raises:
        KeyError: No decision with this part id.
        NotAllowedError: ``actor`` may not keep decisions (recorded).
        ValueError: An empty reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("keeping a decision needs a reason")
    with environment_errors(context.where):
        user_id = require(context, actor, Permission.KEEP)
        created_at = context.now()
        with context.sessions() as session:
            known = session.scalar(select(DecisionRow.part_id).where(DecisionRow.part_id == part_id))
        if known is None:
            raise KeyError(f"no decision about part {part_id} in the visual log")
        with context.writer.begin() as connection:
            connection.execute(
                insert(KeepMarkRow).values(
                    part_id=part_id, created_at=created_at, user_id=user_id, reason=reason
                )
            )


def reviews_of(context: LogContext, part_id: str) -> list[Review]:
    """Every review of one decision, oldest first."""
    with environment_errors(context.where), context.sessions() as session:
        return reviews_where(session, select(ReviewRow.id).where(ReviewRow.part_id == part_id))


def reviews_where(session: Session, ids: Select[Any]) -> list[Review]:
    """The reviews whose ids ``ids`` selects, in chain order (database errors pass through)."""
    r = ReviewRow
    query = (
        select(r.seq, r.created_at, r.part_id, UserRow.name, r.verdict, r.outcome, r.comment, Station.name)
        .join(UserRow, r.user_id == UserRow.id)
        .join(Station, r.station_id == Station.id)
        .where(r.id.in_(ids.scalar_subquery()))
        .order_by(r.seq)
    )
    return [
        Review(
            station=station,
            seq=seq,
            created_at=at,
            part_id=part_id,
            user=user,
            verdict=Verdict(verdict),
            outcome=ReviewOutcome(outcome),
            comment=comment,
        )
        for seq, at, part_id, user, verdict, outcome, comment, station in session.execute(query)
    ]
