"""Tables of the visual log, as they are at the newest migration. ORM rows never leave ``core.storage``.

The database itself is created and upgraded by the Alembic migrations in
``core/storage/migrations`` (run at start-up by ``core.storage.migrate``); these classes must
describe the same tables, which a test checks by comparing them with a migrated database.

Records are append-only. Decisions, threshold changes and reviews of a station form one hash
chain (``seq``, ``row_hash``; see ``core.storage.chain``) whose head is kept on the station's
row. The only rows the database lets anyone delete are decisions that retention recorded as
pruned first (``pruned_ranges``), and their hashes stay as checkpoints of the chain.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
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
    UniqueConstraint,
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

GENESIS_HASH = "0" * 64  # the "previous hash" of a station's first record

# Days a decision of each verdict stays at least, whatever a retention run says: the delete
# trigger of migration 0003 enforces the same numbers with the database's clock.
MIN_AGE_DAYS = {"good": 1, "not_inspected": 1, "bad": 7}


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
    """A production station (one camera or hot folder and its model), and the head of its chain.

    The head is updated in the same transaction as every record appended to the chain; that
    update is also what serialises two writers of one station (PostgreSQL row lock).
    """

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    head_seq: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    head_hash: Mapped[str] = mapped_column(String(64), server_default=text(f"'{GENESIS_HASH}'"))


class RoleRow(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str | None] = mapped_column(Text)


class UserRow(Base):
    """A person (or ``system``) who reviews, changes thresholds or keeps decisions. Not append-only."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id"))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Revision 0005 (log-in): an Argon2 hash (PHC string); None: the user cannot log in.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


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
    """One part and what was decided about it. Append-only; a link of its station's chain."""

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
    seq: Mapped[int] = mapped_column(Integer)
    row_hash: Mapped[str] = mapped_column(String(64))
    media_bytes: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # image + heatmap
    # 1: the chain form of rows written before revision 0003; 2: it also covers the files' hashes.
    hash_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    image_sha256: Mapped[str | None] = mapped_column(String(64))  # of the image file's bytes
    heatmap_sha256: Mapped[str | None] = mapped_column(String(64))  # of the heatmap file's bytes
    # --- Issue 20 (revision 0007): the good-only second opinion beside the classifier. ---
    # NULL for decisions without one. The verdict (chained) is the combined one; these three say
    # how it came about and are not links of the chain (hash version 2 predates them).
    anomaly_score: Mapped[float | None] = mapped_column(Float)
    anomaly_threshold: Mapped[float | None] = mapped_column(Float)
    fired: Mapped[str | None] = mapped_column(String(16))  # classifier, anomaly, both; NULL: neither

    __table_args__ = (
        CheckConstraint("verdict IN ('good', 'bad', 'not_inspected')", name="verdict"),
        # A not-inspected part always says why; an inspected one always has its score and the
        # threshold in force.
        CheckConstraint(
            "(verdict = 'not_inspected' AND reason IS NOT NULL)"
            " OR (verdict IN ('good', 'bad') AND score IS NOT NULL AND threshold IS NOT NULL)",
            name="verdict_fields",
        ),
        UniqueConstraint("station_id", "seq", name="uq_decisions_station_id_seq"),
        # The GUI's queries on a large log, all per station: newest first and time ranges (the
        # verdict makes counts per hour index-only), one verdict newest first, a score band;
        # the hot folder asks whether a content hash was already seen.
        Index("ix_decisions_station_time", "station_id", "created_at", "verdict"),
        Index("ix_decisions_station_verdict_time", "station_id", "verdict", "created_at"),
        Index("ix_decisions_station_score", "station_id", "score"),
        Index("ix_decisions_content_hash", "content_hash"),
        # History review over every station (revision 0006): keyset pages, each sort order on
        # an index that ends in the part id, the key's tie breaker.
        Index("ix_decisions_time_part", "created_at", "part_id"),
        Index("ix_decisions_verdict_time_part", "verdict", "created_at", "part_id"),
        Index("ix_decisions_model_time_part", "model_version_id", "created_at", "part_id"),
        Index("ix_decisions_score_part", "score", "part_id"),
    )


class ThresholdChangeRow(Base):
    """Who changed a station's threshold, when, old and new value, why. Append-only; chained."""

    __tablename__ = "threshold_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    seq: Mapped[int] = mapped_column(Integer)
    row_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    old_threshold: Mapped[float | None] = mapped_column(Float)
    new_threshold: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    # Revision 0005: the what-if figures shown before the change (JSON). Append-only like the
    # row, but outside the chain hash, whose form predates it.
    evidence: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("station_id", "seq", name="uq_threshold_changes_station_id_seq"),
        Index("ix_threshold_changes_station_time", "station_id", "created_at"),
    )


class ReviewRow(Base):
    """A supervisor's confirmation or override of a decision, linked to it. Append-only; chained."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    seq: Mapped[int] = mapped_column(Integer)
    row_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    part_id: Mapped[str] = mapped_column(ForeignKey("decisions.part_id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("verdict IN ('good', 'bad')", name="verdict"),
        CheckConstraint("outcome IN ('confirmed', 'overridden')", name="outcome"),
        UniqueConstraint("station_id", "seq", name="uq_reviews_station_id_seq"),
        Index("ix_reviews_part_id", "part_id"),
        Index("ix_reviews_station_time", "station_id", "created_at"),
    )


class KeepMarkRow(Base):
    """A decision that retention must never remove. Append-only."""

    __tablename__ = "keep_marks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_id: Mapped[str] = mapped_column(ForeignKey("decisions.part_id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: marked when recorded
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_keep_marks_part_id", "part_id"),)


class ShiftRow(Base):
    """One shift of the plan; a shift ends when the next one starts. Configuration, not a record."""

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    start_local: Mapped[str] = mapped_column(String(5))  # "HH:MM"
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name; None: local zone


class RetentionRunRow(Base):
    """A retention run, recorded before it deletes anything: who, when, and the cut-offs it applied.

    A run that was interrupted (files deleted, rows not yet) is finished by the next run, which
    applies at least the same cut-offs.
    """

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    good_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bad_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_inspected_before: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PrunedRangeRow(Base):
    """Consecutive chain links that retention removed, and the hash of the last one (a checkpoint).

    The delete trigger on decisions lets a row go only when a range covering its ``seq`` exists
    and the range's run justifies it (cut-off for the row's verdict later than the row and older
    than ``MIN_AGE_DAYS``; no keep mark, no review); the verifier resumes the chain after the
    range from ``last_hash``.
    """

    __tablename__ = "pruned_ranges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int] = mapped_column(ForeignKey("retention_runs.id"))
    # The newest decision of the range (None for ranges made before revision 0003): the delete
    # trigger checks every row against it, and the verifier checks it against the run's cut-offs.
    newest_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("first_seq >= 1 AND first_seq <= last_seq", name="seq_order"),
        UniqueConstraint("station_id", "last_seq", name="uq_pruned_ranges_station_id_last_seq"),
    )


# ---------------------------------------------------------------- revision 0005: access (issue 17)


class AccessEventRow(Base):
    """A log-in, a failed log-in or a refused action. Append-only; names users by the name given."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    station: Mapped[str] = mapped_column(String(100))
    user_name: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_access_events_time", "created_at"),)


# ---------------------------------------------------------------- revision 0004: alarms (issue 16)


class AlarmEventRow(Base):
    """An alarm raised at a station, or its acknowledgement by the operator. Append-only."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    station: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    user_name: Mapped[str | None] = mapped_column(String(100))
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_alarm_events_station_time", "station", "created_at"),)


# Tables whose rows may be inserted but never changed; of decisions, only pruned rows may go.
APPEND_ONLY_TABLES = (
    "decisions",
    "threshold_changes",
    "reviews",
    "keep_marks",
    "retention_runs",
    "pruned_ranges",
    "alarm_events",
    "access_events",
)
