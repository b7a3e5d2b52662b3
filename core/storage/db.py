"""Engines for the visual log: SQLite on a station, PostgreSQL when several stations share one.

Nothing here runs at import time; an engine exists only once ``make_engine`` is called, on the
thread that will use it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_log = logging.getLogger(__name__)

# WAL survives a process crash by design; synchronous=FULL also survives a power loss.
# busy_timeout lets a reader (a report, a second GUI) hold the file briefly without the
# writer failing at once.
SQLITE_PRAGMAS = (
    "busy_timeout=5000",  # first: switching a new file to WAL waits for the lock like the rest
    "journal_mode=WAL",
    "synchronous=FULL",
    "foreign_keys=ON",
)


def make_engine(url: str) -> Engine:
    """Create an engine for the visual log.

    For SQLite the PRAGMAs are set on every new connection of *this* engine only (never on the
    global ``Engine`` class, which would leak them into unrelated engines), and the folder that
    holds the database file is created. Other URLs (PostgreSQL) pass through, with a pre-ping so
    that a restarted server is reconnected to without restarting the station.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:////var/lib/inspector/inspector.sqlite`` or
            ``postgresql+psycopg://user@host/inspector``.

    Returns:
        The engine. No connection is opened yet.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    engine = create_engine(url)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


# Execution option that makes a SQLite transaction take the write lock at BEGIN. A writer that
# first reads and then writes in a deferred transaction can fail at once with "database is
# locked" (SQLITE_BUSY_SNAPSHOT, no busy wait) when another connection wrote in between;
# BEGIN IMMEDIATE waits for the lock instead, up to busy_timeout.
WRITE = {"inspector_write": True}


def _begin_sqlite(connection: Connection) -> None:
    # The driver's own transaction handling is off (see _set_sqlite_pragmas): it would not
    # BEGIN before DDL, so migrations would not be atomic. SQLAlchemy's begin emits it instead.
    if connection.get_execution_options().get("inspector_write"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def _set_sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _begin_sqlite)
    cursor = dbapi_connection.cursor()
    try:
        _execute_pragmas(cursor)
    finally:
        cursor.close()


def _execute_pragmas(cursor: Any) -> None:
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
        if pragma.startswith("journal_mode"):
            mode = str(cursor.fetchone()[0]).lower()
            # An in-memory database reports "memory"; anything else means WAL was refused
            # (e.g. a network file system), and crash safety is weaker than promised.
            if mode not in ("wal", "memory"):
                _log.warning(
                    "SQLite refused WAL mode (journal_mode=%s); is the file on a network share?", mode
                )
