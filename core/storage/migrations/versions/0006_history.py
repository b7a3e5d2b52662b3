"""History review at scale: indexes for the supervisor's filters over every station (issue 17).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

The history view reads the whole log, not one station, in pages found by key (keyset
pagination: "the 50 rows after this time and part id"), so each page costs a short index range
whatever its depth. Every sort order therefore needs an index that ends in the part id, the tie
breaker of the key: newest/oldest first over all stations, one verdict by time, one model by
time, and by score. Plain indexes only: no row is touched, no trigger fires.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# name -> columns (frozen here, as every migration is)
_INDEXES = {
    "ix_decisions_time_part": ["created_at", "part_id"],
    "ix_decisions_verdict_time_part": ["verdict", "created_at", "part_id"],
    "ix_decisions_model_time_part": ["model_version_id", "created_at", "part_id"],
    "ix_decisions_score_part": ["score", "part_id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "decisions", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="decisions")
