"""Tables of the visual log. ORM rows never leave ``core.storage``.

The schema is meant to grow through Alembic migrations (reviews, users, shifts, a hash chain over
the decisions), so every constraint and index has a stable, explicit name, and decisions are
append-only at the database level: a later correction is a new linked row, never an edit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Connection,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored the same way on every backend.

    SQLite has no time zones: values are stored as naive UTC text of fixed width (so text order is
    time order) and come back tagged UTC. PostgreSQL stores ``timestamptz``. Naive datetimes are
    refused on the way in: their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the visual log stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Station(Base):
    """A production station (one camera or hot folder and its model)."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class ModelVersion(Base):
    """A model file, identified by the SHA-256 of its bytes."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256, lowercase hex
    name: Mapped[str | None] = mapped_column(String(200))
    # ``metadata`` is reserved by declarative classes, hence the attribute name.
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DecisionRow(Base):
    """One part and what was decided about it. Append-only (see ``install_triggers``)."""

    __tablename__ = "decisions"

    part_id: Mapped[str] = mapped_column(String(26), primary_key=True)  # ULID
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source_ref: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    image_path: Mapped[str | None] = mapped_column(String(255))  # relative to the media root
    heatmap_path: Mapped[str | None] = mapped_column(String(255))  # relative to the media root

    __table_args__ = (
        CheckConstraint("verdict IN ('good', 'bad', 'not_inspected')", name="verdict"),
        # A not-inspected part always says why; an inspected one always has its score and the
        # threshold in force.
        CheckConstraint(
            "(verdict = 'not_inspected' AND reason IS NOT NULL)"
            " OR (verdict IN ('good', 'bad') AND score IS NOT NULL AND threshold IS NOT NULL)",
            name="verdict_fields",
        ),
        # The GUI's queries on a large log: newest first, per station, filter by verdict, sort
        # or filter by score; the hot folder asks whether a content hash was already seen.
        Index("ix_decisions_created_at", "created_at"),
        Index("ix_decisions_station_id_created_at", "station_id", "created_at"),
        Index("ix_decisions_verdict", "verdict"),
        Index("ix_decisions_score", "score"),
        Index("ix_decisions_content_hash", "content_hash"),
    )


# Tables whose rows may be inserted but never changed or removed.
APPEND_ONLY_TABLES = ("decisions",)

_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_no_{op_lower}
BEFORE {op} ON {table}
BEGIN
    SELECT RAISE(ABORT, '{table} is append-only: {op} refused');
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

# A DO block keeps it idempotent on PostgreSQL < 14 (no CREATE OR REPLACE TRIGGER); the
# regclass cast follows search_path, so each schema gets its own triggers.
_PG_TRIGGER = """
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgname = '{table}_no_{op_lower}' AND tgrelid = '{table}'::regclass
    ) THEN
        CREATE TRIGGER {table}_no_{op_lower} BEFORE {op} ON {table}
        FOR EACH {level} EXECUTE FUNCTION inspector_refuse_change();
    END IF;
END
$$
"""


def install_triggers(connection: Connection) -> None:
    """Create the append-only triggers if they are missing (idempotent).

    Call inside a transaction, after ``metadata.create_all``.
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for op in ("UPDATE", "DELETE"):
                connection.execute(text(_SQLITE_TRIGGER.format(table=table, op=op, op_lower=op.lower())))
    elif dialect == "postgresql":
        connection.execute(text(_PG_FUNCTION))
        for table in APPEND_ONLY_TABLES:
            for op, level in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
                sql = _PG_TRIGGER.format(table=table, op=op, op_lower=op.lower(), level=level)
                connection.execute(text(sql))
    # Other backends get no trigger; the log's own code never updates or deletes decisions.


def create_schema(connection: Connection) -> None:
    """Create missing tables, indexes and triggers. Safe to call on every start."""
    Base.metadata.create_all(connection)
    install_triggers(connection)
