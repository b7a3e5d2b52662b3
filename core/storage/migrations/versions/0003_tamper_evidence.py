"""Tamper evidence: retention is checked by the database, media files join the chain.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Until now the delete trigger on decisions let a row go as soon as any pruned range covered it,
so anyone able to INSERT a retention run and a range could remove a minutes-old bad decision.
From this revision a decision may be deleted only when the range covering it belongs to a run of
the same station whose cut-off for the decision's verdict is later than the decision, and is
itself older than the minimum age the database allows (measured by the database's own clock, so
a forged run time does not help), and the decision has no keep mark and no review (SQLite does
not enforce foreign keys for every client). A range records the time of its newest decision
(``newest_at``), which the trigger checks too and ``verify-log`` compares with the run.

Decisions get ``hash_version`` (1: the chain form of revision 0002, kept by every existing row;
2: the form that also covers the SHA-256 of the image and heatmap files) and the two file hashes.

This file is frozen: its minimum ages are written out here, not imported.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Days a decision of each verdict stays at least, whatever a retention run says. Bad parts are
# the evidence an attacker wants gone: they stay a week, past the shift reports that anchor them.
_MIN_AGE_DAYS = {"good": 1, "not_inspected": 1, "bad": 7}

_DELETE_REFUSED = (
    "decisions is append-only: DELETE refused (only a retention run removes rows: older than its"
    " cut-off, past the minimum age, not kept or reviewed, as a recorded pruned range)"
)

_CUTOFF = (
    "(CASE OLD.verdict WHEN 'good' THEN r.good_before WHEN 'bad' THEN r.bad_before"
    " WHEN 'not_inspected' THEN r.not_inspected_before END)"
)


def _justified(floor: str) -> str:
    """The condition under which the database lets a decision row (OLD) be deleted."""
    # Ranges of a station do not overlap, so the first range ending at or after the row is the
    # only candidate (found through the unique index on station and last_seq).
    return (
        "EXISTS (SELECT 1 FROM pruned_ranges AS p JOIN retention_runs AS r ON r.id = p.run_id"
        " WHERE p.id = (SELECT p2.id FROM pruned_ranges AS p2"
        " WHERE p2.station_id = OLD.station_id AND p2.last_seq >= OLD.seq ORDER BY p2.last_seq LIMIT 1)"
        " AND p.first_seq <= OLD.seq AND r.station_id = OLD.station_id"
        " AND p.newest_at IS NOT NULL AND OLD.created_at <= p.newest_at"
        f" AND OLD.created_at < {_CUTOFF} AND {_CUTOFF} <= {floor})"
        " AND NOT EXISTS (SELECT 1 FROM keep_marks AS k WHERE k.part_id = OLD.part_id)"
        " AND NOT EXISTS (SELECT 1 FROM reviews AS v WHERE v.part_id = OLD.part_id)"
    )


def _floor_sqlite() -> str:
    # Stored times are UTC text "YYYY-MM-DD HH:MM:SS.ffffff"; datetime() writes the same prefix.
    cases = " ".join(f"WHEN '{v}' THEN datetime('now', '-{d} days')" for v, d in _MIN_AGE_DAYS.items())
    return f"(CASE OLD.verdict {cases} END)"


def _floor_postgresql() -> str:
    cases = " ".join(
        f"WHEN '{v}' THEN statement_timestamp() - interval '{d} days'" for v, d in _MIN_AGE_DAYS.items()
    )
    return f"(CASE OLD.verdict {cases} END)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    # Plain ALTER TABLE ... ADD COLUMN: no table copy, and no row trigger fires.
    op.add_column("pruned_ranges", sa.Column("newest_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "decisions", sa.Column("hash_version", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.add_column("decisions", sa.Column("image_sha256", sa.String(length=64), nullable=True))
    op.add_column("decisions", sa.Column("heatmap_sha256", sa.String(length=64), nullable=True))

    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS decisions_no_delete")
        op.execute(
            f"CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions"
            f" WHEN NOT ({_justified(_floor_sqlite())}) BEGIN"
            f" SELECT RAISE(ABORT, '{_DELETE_REFUSED}'); END"
        )
    elif dialect == "postgresql":
        # The trigger itself stays; its function is replaced.
        op.execute(
            f"""
CREATE OR REPLACE FUNCTION inspector_guard_decision_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {_justified(_floor_postgresql())} THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '{_DELETE_REFUSED}' USING ERRCODE = 'integrity_constraint_violation';
END
$$"""
        )


def downgrade() -> None:
    raise NotImplementedError("the visual log is append-only: restore the backup taken before the upgrade")
