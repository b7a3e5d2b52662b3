"""The good-only second opinion: anomaly score, its threshold and which check fired (issue 20).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Three nullable columns on ``decisions``: ``anomaly_score`` and ``anomaly_threshold`` (the good-only
model's distance from good parts and the threshold it was judged at) and ``fired`` (which check
called the part bad: ``classifier``, ``anomaly`` or ``both``; NULL when neither did or the part was
not inspected). Existing rows keep NULL: they were decided by the classifier alone. Plain ALTER
TABLE ... ADD COLUMN on both databases: no table copy, no row trigger fires.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = ("anomaly_score", "anomaly_threshold", "fired")


def upgrade() -> None:
    op.add_column("decisions", sa.Column("anomaly_score", sa.Float(), nullable=True))
    op.add_column("decisions", sa.Column("anomaly_threshold", sa.Float(), nullable=True))
    op.add_column("decisions", sa.Column("fired", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # Dropping columns loses what they held: only meant for a log upgraded by mistake, before use.
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+): a batch copy of the table would drop its
    # append-only triggers with it.
    for name in reversed(_COLUMNS):
        op.drop_column("decisions", name)
