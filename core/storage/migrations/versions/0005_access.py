"""Log-in and access control: password hashes, the engineer role, recorded log-ins and refusals (issue 17).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Users get an Argon2 password hash (``password_hash``, a PHC string; None: the user cannot log in,
which is every user an earlier version registered until an admin gives them a password) and the
time it was set. Threshold changes keep the what-if figures shown before them (``evidence``,
JSON). The role ``engineer`` joins operator, supervisor and admin. ``access_events``
records each log-in, each failed log-in and each action refused to a user; like the other
records it is append-only, enforced by triggers.

This file is frozen: it names its tables and columns here, not through ``core.storage.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLE = "access_events"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Plain ALTER TABLE ... ADD COLUMN on both backends: users has no triggers, nothing is copied.
    op.add_column("users", sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.add_column("users", sa.Column("password_set_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("threshold_changes", sa.Column("evidence", sa.Text(), nullable=True))
    roles = sa.table("roles", sa.column("name", sa.String()), sa.column("description", sa.Text()))
    op.execute(
        roles.insert().values(name="engineer", description="changes thresholds and the shift plan, reviews")
    )
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station", sa.String(length=100), nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_access_events"),
    )
    op.create_index("ix_access_events_time", _TABLE, ["created_at"])
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
    bind = op.get_bind()
    engineers = bind.execute(
        sa.text(
            "SELECT COUNT(*) FROM users JOIN roles ON roles.id = users.role_id WHERE roles.name = 'engineer'"
        )
    ).scalar_one()
    if engineers:
        raise RuntimeError("users with the engineer role exist; give them another role before downgrading")
    if bind.dialect.name == "postgresql":
        # Dropping the table drops its triggers; the log-ins it recorded go with it.
        op.drop_table(_TABLE)
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_delete")
        op.drop_index("ix_access_events_time", table_name=_TABLE)
        op.drop_table(_TABLE)
    op.execute("DELETE FROM roles WHERE name = 'engineer'")
    if bind.dialect.name == "sqlite":
        # A batch copy of threshold_changes would fire no trigger but lose them; a plain DROP
        # COLUMN (SQLite 3.35+) keeps the table and its triggers.
        op.execute("ALTER TABLE threshold_changes DROP COLUMN evidence")
    else:
        op.drop_column("threshold_changes", "evidence")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_set_at")
        batch.drop_column("password_hash")
