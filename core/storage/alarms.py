"""Alarms in the visual log: each one raised, and who acknowledged it when (revision 0004).

The station records an alarm when it is raised (``raised``), and again when the operator
acknowledges it (``acknowledged``, with the user: the logged-in supervisor's name, else
``operator``). Rows are append-only and name the station, the kind (``core.station.events
.AlarmKind`` values, stored as text so the log does not depend on the station's enum) and the
plain message the operator was shown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.schema import AlarmEventRow

MAX_MESSAGE_CHARS = 2000  # a message is one line for a person; a longer one is cut


class AlarmEvent(enum.StrEnum):
    """What happened to an alarm."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRecord:
    """One row of the alarm log."""

    id: int
    created_at: datetime  # UTC
    station: str
    kind: str
    event: AlarmEvent
    message: str
    user: str | None  # who acknowledged it; None for a raised alarm
    raised_at: datetime | None  # for an acknowledgement: when the alarm it answers was raised


def record_alarm(
    context: LogContext,
    *,
    kind: str,
    event: AlarmEvent | str,
    message: str,
    user: str | None = None,
    raised_at: datetime | None = None,
    at: datetime | None = None,
) -> AlarmRecord:
    """Append one alarm event for the log's station.

    Args:
        context: The log.
        kind: What the alarm is about (e.g. ``source``, ``bad_run``).
        event: ``raised`` or ``acknowledged``.
        message: The words the operator was shown.
        user: Who acknowledged it (required for an acknowledgement).
        raised_at: For an acknowledgement, when the alarm was raised.
        at: When it happened (UTC); default the log's clock. A raised alarm recorded late (the
            database was unavailable when it was raised) keeps its own time.

    Raises:
        ValueError: An empty kind, or an acknowledgement without a user.
        StorageError: The database refused; nothing is recorded.
    """
    event = AlarmEvent(event)
    if not kind.strip():
        raise ValueError("an alarm needs a kind")
    if event is AlarmEvent.ACKNOWLEDGED and not (user or "").strip():
        raise ValueError("an acknowledgement names who acknowledged the alarm")
    created_at = at if at is not None else context.now()
    kind = kind.strip()[:32]
    message = message[:MAX_MESSAGE_CHARS]
    user_name = user.strip()[:100] if user and user.strip() else None
    values = {
        "created_at": created_at,
        "station": context.station,
        "kind": kind,
        "event": event.value,
        "message": message,
        "user_name": user_name,
        "raised_at": raised_at,
    }
    with environment_errors(context.where), context.writer.begin() as connection:
        row_id = connection.execute(
            insert(AlarmEventRow).values(**values).returning(AlarmEventRow.id)
        ).scalar_one()
    return AlarmRecord(
        id=row_id,
        created_at=created_at,
        station=context.station,
        kind=kind,
        event=event,
        message=message,
        user=user_name,
        raised_at=raised_at,
    )


def alarms(
    context: LogContext, *, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
) -> list[AlarmRecord]:
    """The log's station's alarm events in ``[since, until)``, oldest first, at most ``limit``."""
    query = select(AlarmEventRow).where(AlarmEventRow.station == context.station)
    if since is not None:
        query = query.where(AlarmEventRow.created_at >= since)
    if until is not None:
        query = query.where(AlarmEventRow.created_at < until)
    query = query.order_by(AlarmEventRow.created_at, AlarmEventRow.id).limit(limit)
    with environment_errors(context.where), context.sessions() as session:
        rows = session.execute(query).scalars().all()
    return [
        AlarmRecord(
            id=row.id,
            created_at=row.created_at,
            station=row.station,
            kind=row.kind,
            event=AlarmEvent(row.event),
            message=row.message,
            user=row.user_name,
            raised_at=row.raised_at,
        )
        for row in rows
    ]
