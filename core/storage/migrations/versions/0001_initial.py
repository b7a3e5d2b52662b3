"""The first visual log: stations, model versions, append-only decisions.

Revision ID: 0001
Revises:
Create Date: 2025-03-01

Databases created by the first version of the station (before Alembic) have exactly these
tables and no ``alembic_version``; ``core.storage.migrate`` stamps them with this revision.
This file is frozen: it must not import the current schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS decisions_no_{op_lower}
BEFORE {op} ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions is append-only: {op} refused');
END
"""

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION inspector_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stations"),
        sa.UniqueConstraint("name", name="uq_stations_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("hash", name="uq_model_versions_hash"),
    )
    op.create_table(
        "decisions",
        sa.Column("part_id", sa.String(length=26), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_ref", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("image_path", sa.String(length=255), nullable=True),
        sa.Column("heatmap_path", sa.String(length=255), nullable=True),
        sa.CheckConstraint("verdict IN ('good', 'bad', 'not_inspected')", name="ck_decisions_verdict"),
        sa.CheckConstraint(
            "(verdict = 'not_inspected' AND reason IS NOT NULL)"
            " OR (verdict IN ('good', 'bad') AND score IS NOT NULL AND threshold IS NOT NULL)",
            name="ck_decisions_verdict_fields",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name="fk_decisions_model_version_id_model_versions"
        ),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name="fk_decisions_station_id_stations"),
        sa.PrimaryKeyConstraint("part_id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_index("ix_decisions_station_id_created_at", "decisions", ["station_id", "created_at"])
    op.create_index("ix_decisions_verdict", "decisions", ["verdict"])
    op.create_index("ix_decisions_score", "decisions", ["score"])
    op.create_index("ix_decisions_content_hash", "decisions", ["content_hash"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("UPDATE", "DELETE"):
            op.execute(_SQLITE_TRIGGER.format(op=name, op_lower=name.lower()))
    elif dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for name, level in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
            op.execute(
                f"CREATE TRIGGER decisions_no_{name.lower()} BEFORE {name} ON decisions"
                f" FOR EACH {level} EXECUTE FUNCTION inspector_refuse_change()"
            )


def downgrade() -> None:
    raise NotImplementedError("the visual log is append-only: restore the backup taken before the upgrade")
