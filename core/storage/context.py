"""The open visual log that every concern module shares: engine, sessions, station, clock, caches.

``VisualLog`` is a facade over modules split by concern (writing, queries, reviews, users, ...).
They do not reach into each other or into the facade: each takes this context, which holds what
an open log is (the engine and its session factories, the media root, the station's name, the
clock) and the small caches that save a query per call (the station's row id, model row ids, the
chain heads this log last wrote). Opening one creates the engine and brings the schema to the
newest revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.storage.db import WRITE, make_engine
from core.storage.errors import environment_errors
from core.storage.migrate import upgrade
from core.storage.records import ChainHead
from core.storage.schema import ModelVersion, Station


def utc_now() -> datetime:
    """The wall clock, UTC-aware (a log's default clock)."""
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class LogContext:
    """An open visual log, as the concern modules see it.

    Attributes:
        url: SQLAlchemy URL, password included.
        where: The URL without its password, for messages.
        media_root: Folder of images and heatmaps.
        station: Name of the station whose records this log writes.
        clock: Returns the current time, UTC-aware.
        engine: For reads (deferred transactions).
        writer: The engine with ``db.WRITE``: a SQLite transaction takes the write lock at BEGIN.
        sessions: ORM sessions for reads.
        write_sessions: ORM sessions that read and then write.
        station_id: The station's row id once known (it never changes).
        model_ids: Row ids of model versions by hash.
        heads: Chain heads as this log last wrote them, by station id.
        closed: Set when the log is closed.
    """

    url: str
    where: str
    media_root: Path
    station: str
    clock: Callable[[], datetime]
    engine: Engine
    writer: Engine
    sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]
    station_id: int | None = None
    model_ids: dict[str, int] = field(default_factory=dict)
    heads: dict[int, ChainHead] = field(default_factory=dict)
    closed: bool = False

    def now(self) -> datetime:
        """The log's clock, UTC.

        Raises:
            ValueError: The clock returned a naive datetime.
        """
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the log's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def check_open(self) -> None:
        """Raise ``RuntimeError`` once the log is closed."""
        if self.closed:
            raise RuntimeError("the visual log is closed")

    def find_station_id(self, bind: Connection | Session) -> int | None:
        """The station's row id, or None while it has recorded nothing."""
        if self.station_id is None:
            self.station_id = bind.scalar(select(Station.id).where(Station.name == self.station))
        return self.station_id

    def ensure_station(self) -> int:
        """The station's row id; the row is created on first use."""
        if self.station_id is None:
            self.station_id = self.get_or_create(Station, Station.name, self.station, {"name": self.station})
        return self.station_id

    def get_or_create(
        self, model: type[Station | ModelVersion], key: Any, value: str, values: dict[str, Any]
    ) -> int:
        """The id of the row whose ``key`` is ``value``, inserting ``values`` when there is none."""
        query = select(model.id).where(key == value)
        with self.sessions() as session:
            found = session.scalar(query)
        if found is not None:
            return found
        with self.write_sessions() as session:
            found = session.scalar(query)
            if found is not None:
                return found
            row = model(**values)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                # Another station sharing the database created it first.
                session.rollback()
                found = session.scalar(query)
                if found is None:
                    raise
                return found
            return row.id


def open_context(
    url: str, *, media_root: Path, station: str, clock: Callable[[], datetime]
) -> tuple[LogContext, Path | None]:
    """Create the engine, the media root and the newest schema; returns the context and the backup.

    The backup is the copy of a SQLite file taken before its schema was upgraded (None when none
    was needed, see ``core.storage.migrate``).

    Raises:
        StorageError: The database or the media root cannot be opened, or the migration failed.
    """
    where = make_url(url).render_as_string(hide_password=True)
    with environment_errors(where):
        engine = make_engine(url)
    try:
        with environment_errors(str(media_root)):
            media_root.mkdir(parents=True, exist_ok=True)
        with environment_errors(where):
            backup = upgrade(engine, url=url)
    except BaseException:
        engine.dispose()
        raise
    writer = engine.execution_options(**WRITE)
    context = LogContext(
        url=url,
        where=where,
        media_root=media_root,
        station=station,
        clock=clock,
        engine=engine,
        writer=writer,
        sessions=sessionmaker(engine, expire_on_commit=False),
        write_sessions=sessionmaker(writer, expire_on_commit=False),
    )
    return context, backup
