"""Schema migrations at start-up: back up the SQLite file, then upgrade under a lock.

Every ``VisualLog`` calls ``upgrade`` when it opens. A database already at the newest revision
costs one small query; only an older one loads Alembic. Several processes may open the same
database at once (the station, a report, a second GUI): the upgrade runs inside one transaction
that holds the write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock) and checks
the revision again once it has the lock, so exactly one of them migrates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from core.storage.backup import backup_sqlite_file, sqlite_file
from core.storage.db import WRITE

_log = logging.getLogger(__name__)

HEAD_REVISION = "0007"  # the newest file in migrations/versions; a test keeps them in step
FIRST_REVISION = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x1A5EC7  # any constant shared by every station of this product

_UNVERSIONED = "unversioned"  # the first station version made its tables without Alembic


class SchemaVersionError(RuntimeError):
    """The database was written by a newer version of the station than this one."""


def current_revision(connection: Connection) -> str | None:
    """The database's revision; None for an empty database."""
    inspector = inspect(connection)
    if inspector.has_table("alembic_version"):
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if inspector.has_table("decisions"):
        return _UNVERSIONED
    return None


def upgrade(engine: Engine, *, url: str | None = None) -> Path | None:
    """Bring the database to ``HEAD_REVISION``; back up an existing SQLite file first.

    Args:
        engine: An engine from ``make_engine``.
        url: The URL the engine was made from (with its password), to locate the SQLite file.

    Returns:
        The backup taken before migrating, or None when none was needed.

    Raises:
        SchemaVersionError: The database is newer than this software.
        sqlalchemy.exc.DBAPIError, OSError: The database or the backup folder refused (the
            caller turns these into ``StorageError``).
    """
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == HEAD_REVISION:
        return None
    _check_known(revision)

    backup = None
    source = sqlite_file(url or engine.url.render_as_string(hide_password=False))
    if revision is not None and source is not None and source.is_file():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        label = FIRST_REVISION if revision == _UNVERSIONED else revision
        backup = (
            source.parent
            / "backups"
            / f"{source.stem}.before-{HEAD_REVISION}.from-{label}.{stamp}{source.suffix}"
        )
        backup_sqlite_file(source, backup)
        _log.warning("visual log %s backed up to %s before upgrading its schema", source, backup)

    from alembic import command
    from alembic.config import Config

    with engine.execution_options(**WRITE).connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite's way to change a table is to copy it; with foreign keys enforced, dropping
            # a table that others refer to would fail. They are checked before the commit.
            _raw_pragma(connection, "foreign_keys=OFF")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                revision = current_revision(connection)  # another process may have migrated meanwhile
                if revision == HEAD_REVISION:
                    return backup
                _check_known(revision)
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = connection
                if revision == _UNVERSIONED:
                    command.stamp(config, FIRST_REVISION)
                command.upgrade(config, "head")
                if sqlite:
                    broken = connection.execute(text("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"the schema upgrade broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _raw_pragma(connection, "foreign_keys=ON")
    _log.info("visual log schema upgraded from %s to %s", revision, HEAD_REVISION)
    return backup


def _raw_pragma(connection: Connection, pragma: str) -> None:
    # Straight to the driver: through SQLAlchemy it would open a transaction, inside which
    # SQLite ignores this PRAGMA.
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA {pragma}")


def _check_known(revision: str | None) -> None:
    known = {None, _UNVERSIONED, *(f"{n:04d}" for n in range(1, int(HEAD_REVISION) + 1))}
    if revision not in known:
        raise SchemaVersionError(
            f"the visual log's schema is at revision {revision}, newer than this station knows "
            f"({HEAD_REVISION}); update the station software"
        )
