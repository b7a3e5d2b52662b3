"""The full visual log: hash chain, threshold changes, reviews, users and roles, shifts, retention.

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-20

Existing decisions join their station's hash chain in time order (this migration is the one
place that writes ``seq`` and ``row_hash`` into existing rows; the append-only triggers are
dropped for it and created again, stricter, at the end). ``media_bytes`` of existing rows is 0:
their files count towards a disk budget only through the free-space rule.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from core.storage.chain import GENESIS_HASH, decision_hash

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NO_CHANGE_TABLES = ("threshold_changes", "reviews", "keep_marks", "retention_runs", "pruned_ranges")

# A decision may be deleted only once retention has recorded a pruned range covering it. Ranges of
# a station do not overlap, so the first range ending at or after the row is the only candidate.
_COVERED = (
    "COALESCE((SELECT p.first_seq FROM pruned_ranges AS p"
    " WHERE p.station_id = OLD.station_id AND p.last_seq >= OLD.seq"
    " ORDER BY p.last_seq LIMIT 1), OLD.seq + 1) <= OLD.seq"
)
_DELETE_REFUSED = (
    "decisions is append-only: DELETE refused (only retention removes rows, as recorded pruned ranges)"
)
_HEAD_BACKWARDS = "stations: the head of a hash chain never moves backwards"


def _sqlite_triggers() -> list[str]:
    statements = [
        "CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions BEGIN"
        " SELECT RAISE(ABORT, 'decisions is append-only: UPDATE refused'); END",
        f"CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions WHEN NOT ({_COVERED}) BEGIN"
        f" SELECT RAISE(ABORT, '{_DELETE_REFUSED}'); END",
        "CREATE TRIGGER stations_head_forward BEFORE UPDATE OF head_seq ON stations"
        " WHEN NEW.head_seq < OLD.head_seq BEGIN"
        f" SELECT RAISE(ABORT, '{_HEAD_BACKWARDS}'); END",
    ]
    for table in _NO_CHANGE_TABLES:
        for name in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_no_{name.lower()} BEFORE {name} ON {table} BEGIN"
                f" SELECT RAISE(ABORT, '{table} is append-only: {name} refused'); END"
            )
    return statements


def _postgresql_triggers() -> list[str]:
    statements = [
        """
CREATE OR REPLACE FUNCTION inspector_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$""",
        f"""
CREATE OR REPLACE FUNCTION inspector_guard_decision_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {_COVERED} THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '{_DELETE_REFUSED}' USING ERRCODE = 'integrity_constraint_violation';
END
$$""",
        f"""
CREATE OR REPLACE FUNCTION inspector_head_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.head_seq < OLD.head_seq THEN
        RAISE EXCEPTION '{_HEAD_BACKWARDS}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$""",
        "CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions"
        " FOR EACH ROW EXECUTE FUNCTION inspector_refuse_change()",
        "CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions"
        " FOR EACH ROW EXECUTE FUNCTION inspector_guard_decision_delete()",
        "CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions"
        " FOR EACH STATEMENT EXECUTE FUNCTION inspector_refuse_change()",
        "CREATE TRIGGER stations_head_forward BEFORE UPDATE OF head_seq ON stations"
        " FOR EACH ROW EXECUTE FUNCTION inspector_head_forward()",
    ]
    for table in _NO_CHANGE_TABLES:
        for name, level in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
            statements.append(
                f"CREATE TRIGGER {table}_no_{name.lower()} BEFORE {name} ON {table}"
                f" FOR EACH {level} EXECUTE FUNCTION inspector_refuse_change()"
            )
    return statements


def _drop_first_triggers(dialect: str) -> None:
    for name in ("update", "delete", "truncate"):
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS decisions_no_{name}")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS decisions_no_{name} ON decisions")


def _chain_existing_decisions(bind: sa.Connection) -> None:
    """Give every existing decision its place in its station's chain, oldest first."""
    meta = sa.MetaData()
    stations = sa.Table(
        "stations",
        meta,
        sa.Column("id", sa.Integer),
        sa.Column("name", sa.String),
        sa.Column("head_seq", sa.Integer),
        sa.Column("head_hash", sa.String),
    )
    models = sa.Table("model_versions", meta, sa.Column("id", sa.Integer), sa.Column("hash", sa.String))
    decisions = sa.Table(
        "decisions",
        meta,
        *(
            sa.Column(name, kind)
            for name, kind in (
                ("part_id", sa.String),
                ("station_id", sa.Integer),
                ("created_at", sa.DateTime(timezone=True)),
                ("source_ref", sa.Text),
                ("content_hash", sa.String),
                ("verdict", sa.String),
                ("score", sa.Float),
                ("threshold", sa.Float),
                ("reason", sa.Text),
                ("latency_ms", sa.Float),
                ("model_version_id", sa.Integer),
                ("image_path", sa.String),
                ("heatmap_path", sa.String),
                ("seq", sa.Integer),
                ("row_hash", sa.String),
            )
        ),
    )
    model_hashes = dict(bind.execute(sa.select(models.c.id, models.c.hash)).all())
    for station_id, station in bind.execute(sa.select(stations.c.id, stations.c.name)).all():
        previous, seq, updates = GENESIS_HASH, 0, []
        rows = bind.execute(
            sa.select(decisions)
            .where(decisions.c.station_id == station_id)
            .order_by(decisions.c.created_at, decisions.c.part_id)
        ).all()
        for row in rows:
            seq += 1
            created_at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            previous = decision_hash(
                previous,
                station=station,
                seq=seq,
                part_id=row.part_id,
                created_at=created_at,
                source_ref=row.source_ref,
                content_hash=row.content_hash,
                verdict=row.verdict,
                score=row.score,
                threshold=row.threshold,
                reason=row.reason,
                latency_ms=row.latency_ms,
                model_hash=model_hashes.get(row.model_version_id),
                image_path=row.image_path,
                heatmap_path=row.heatmap_path,
                media_bytes=0,
            )
            updates.append({"p": row.part_id, "s": seq, "h": previous})
        for start in range(0, len(updates), 5000):
            bind.execute(
                decisions.update()
                .where(decisions.c.part_id == sa.bindparam("p"))
                .values(seq=sa.bindparam("s"), row_hash=sa.bindparam("h")),
                updates[start : start + 5000],
            )
        bind.execute(
            stations.update().where(stations.c.id == station_id).values(head_seq=seq, head_hash=previous)
        )


def _decisions_as_copied() -> sa.Table:
    """The decisions table as it is after the columns were added, for SQLite's table copy."""
    return sa.Table(
        "decisions",
        sa.MetaData(),
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
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("row_hash", sa.String(length=64), nullable=True),
        sa.Column("media_bytes", sa.Integer(), server_default=sa.text("0"), nullable=False),
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


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    now = datetime.now(UTC)

    # Plain ALTER TABLE ... ADD COLUMN (constant defaults): no table copy, on SQLite either.
    op.add_column(
        "stations", sa.Column("head_seq", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column(
        "stations",
        sa.Column(
            "head_hash", sa.String(length=64), server_default=sa.text(f"'{GENESIS_HASH}'"), nullable=False
        ),
    )

    _drop_first_triggers(dialect)
    op.add_column("decisions", sa.Column("seq", sa.Integer(), nullable=True))
    op.add_column("decisions", sa.Column("row_hash", sa.String(length=64), nullable=True))
    op.add_column(
        "decisions", sa.Column("media_bytes", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    _chain_existing_decisions(bind)

    for index in (
        "ix_decisions_created_at",
        "ix_decisions_station_id_created_at",
        "ix_decisions_verdict",
        "ix_decisions_score",
    ):
        op.drop_index(index, table_name="decisions")
    with op.batch_alter_table("decisions", copy_from=_decisions_as_copied()) as batch:
        batch.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("row_hash", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint("uq_decisions_station_id_seq", ["station_id", "seq"])
    # The table copy on SQLite drops every index; the content hash one is made again.
    op.execute("DROP INDEX IF EXISTS ix_decisions_content_hash")
    op.create_index("ix_decisions_content_hash", "decisions", ["content_hash"])
    op.create_index("ix_decisions_station_time", "decisions", ["station_id", "created_at", "verdict"])
    op.create_index("ix_decisions_station_verdict_time", "decisions", ["station_id", "verdict", "created_at"])
    op.create_index("ix_decisions_station_score", "decisions", ["station_id", "score"])

    roles = op.create_table(
        "roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_roles"),
        sa.UniqueConstraint("name", name="uq_roles_name"),
    )
    users = op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name="fk_users_role_id_roles"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    assert roles is not None and users is not None
    # No explicit ids: PostgreSQL's sequences must hand out the next ones.
    op.bulk_insert(
        roles,
        [
            {"name": "operator", "description": "runs the station; sees decisions"},
            {"name": "supervisor", "description": "reviews decisions, changes thresholds"},
            {"name": "admin", "description": "everything, including users and retention"},
        ],
    )
    admin = bind.execute(sa.select(roles.c.id).where(roles.c.name == "admin")).scalar_one()
    op.bulk_insert(
        users,
        [
            {
                "name": "system",
                "display_name": "the station itself",
                "role_id": admin,
                "active": True,
                "created_at": now if dialect != "sqlite" else now.replace(tzinfo=None),
            }
        ],
    )

    op.create_table(
        "threshold_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("old_threshold", sa.Float(), nullable=True),
        sa.Column("new_threshold", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_threshold_changes_model_version_id_model_versions",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name="fk_threshold_changes_station_id_stations"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_threshold_changes_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_threshold_changes"),
        sa.UniqueConstraint("station_id", "seq", name="uq_threshold_changes_station_id_seq"),
    )
    op.create_index("ix_threshold_changes_station_time", "threshold_changes", ["station_id", "created_at"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("part_id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint("verdict IN ('good', 'bad')", name="ck_reviews_verdict"),
        sa.CheckConstraint("outcome IN ('confirmed', 'overridden')", name="ck_reviews_outcome"),
        sa.ForeignKeyConstraint(["part_id"], ["decisions.part_id"], name="fk_reviews_part_id_decisions"),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name="fk_reviews_station_id_stations"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_reviews_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.UniqueConstraint("station_id", "seq", name="uq_reviews_station_id_seq"),
    )
    op.create_index("ix_reviews_part_id", "reviews", ["part_id"])
    op.create_index("ix_reviews_station_time", "reviews", ["station_id", "created_at"])

    op.create_table(
        "keep_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.String(length=26), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["part_id"], ["decisions.part_id"], name="fk_keep_marks_part_id_decisions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_keep_marks_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_keep_marks"),
    )
    op.create_index("ix_keep_marks_part_id", "keep_marks", ["part_id"])

    op.create_table(
        "shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("start_local", sa.String(length=5), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_shifts"),
        sa.UniqueConstraint("name", name="uq_shifts_name"),
    )

    op.create_table(
        "retention_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("good_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bad_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_inspected_before", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name="fk_retention_runs_station_id_stations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_retention_runs"),
    )
    op.create_table(
        "pruned_ranges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("first_seq >= 1 AND first_seq <= last_seq", name="ck_pruned_ranges_seq_order"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["retention_runs.id"], name="fk_pruned_ranges_run_id_retention_runs"
        ),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name="fk_pruned_ranges_station_id_stations"),
        sa.PrimaryKeyConstraint("id", name="pk_pruned_ranges"),
        sa.UniqueConstraint("station_id", "last_seq", name="uq_pruned_ranges_station_id_last_seq"),
    )

    # Other backends get no triggers; the log's own code never updates or deletes records.
    triggers = {"sqlite": _sqlite_triggers, "postgresql": _postgresql_triggers}.get(dialect)
    for statement in triggers() if triggers else []:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the visual log is append-only: restore the backup taken before the upgrade")
