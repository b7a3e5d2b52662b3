"""The shift plan: named shifts by their local start time, configuration kept in the log.

Reports of past shifts use the plan given to them; replacing the plan changes no record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, insert, select

from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.records import ShiftDefinition
from core.storage.schema import ShiftRow

_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def shift_plan(context: LogContext) -> list[ShiftDefinition]:
    """The shifts of the plan in order of their start time; empty when none is configured."""
    with environment_errors(context.where), context.sessions() as session:
        rows = session.execute(
            select(ShiftRow.name, ShiftRow.start_local, ShiftRow.timezone).order_by(ShiftRow.start_local)
        ).all()
    return [ShiftDefinition(name=n, start=s, timezone=tz) for n, s, tz in rows]


def set_shift_plan(context: LogContext, shifts: Sequence[ShiftDefinition]) -> None:
    """Replace the shift plan in one transaction.

    Raises:
        ValueError: Names or start times repeat, a name is empty, or a start is not HH:MM.
    """
    names = [s.name for s in shifts]
    starts = [s.start for s in shifts]
    if len(set(names)) != len(names) or len(set(starts)) != len(starts):
        raise ValueError("shift names and start times must be unique")
    for shift in shifts:
        if not _HH_MM.fullmatch(shift.start) or not shift.name.strip():
            raise ValueError(f"shift {shift.name!r} at {shift.start!r}: give a name and a HH:MM start")
    with environment_errors(context.where), context.writer.begin() as connection:
        connection.execute(delete(ShiftRow))
        for shift in shifts:
            connection.execute(
                insert(ShiftRow).values(name=shift.name, start_local=shift.start, timezone=shift.timezone)
            )
