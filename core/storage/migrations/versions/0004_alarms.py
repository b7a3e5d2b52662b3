"""Alarms the operator saw and acknowledged (issue 16).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``alarm_events`` records each alarm a station raised (source offline, storage unavailable, a run
of bad parts, ...) and each acknowledgement by the operator: who (the logged-in user, else
``operator``), when, and which alarm (kind, message, and when it was raised). Like the other
records it is append-only, enforced by triggers.

This file is frozen: it names its table and columns here, not through ``core.storage.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLE = "alarm_events"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_events"),
    )
    op.create_index("ix_alarm_events_station_time", _TABLE, ["station", "created_at"])
    if dialect == "sqlite":
        for name in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {_TABLE}_no_{name.lower()} BEFORE {name} ON {_TABLE} BEGIN"
                f" SELECT RAISE(ABORT, '{_TABLE} is append-only: {name} refused'); END"
            )
    elif dialect == "postgresql":
        # inspector_refuse_change() is revision 0002's.
        for name, level in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
            op.execute(
                f"CREATE TRIGGER {_TABLE}_no_{name.lower()} BEFORE {name} ON {_TABLE}"
                f" FOR EACH {level} EXECUTE FUNCTION inspector_refuse_change()"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_{name}")
    elif dialect == "postgresql":
        for name in ("update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_{name} ON {_TABLE}")
    op.drop_index("ix_alarm_events_station_time", table_name=_TABLE)
    op.drop_table(_TABLE)
