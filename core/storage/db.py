"""Engines for the visual log: SQLite on a station, PostgreSQL when several stations share one.

Nothing here runs at import time; an engine exists only once ``make_engine`` is called, on the
thread that will use it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_log = logging.getLogger(__name__)

# WAL survives a process crash by design; synchronous=FULL also survives a power loss.
# busy_timeout lets a reader (a report, a second GUI) hold the file briefly without the
# writer failing at once.
BUSY_TIMEOUT_S = 5.0
SQLITE_PRAGMAS = (
    f"busy_timeout={int(BUSY_TIMEOUT_S * 1000)}",  # first: the others wait for locks like writes
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
        if pragma.startswith("journal_mode"):
            _switch_journal_mode(cursor, pragma)
            mode = str(cursor.fetchone()[0]).lower()
            # An in-memory database reports "memory"; anything else means WAL was refused
            # (e.g. a network file system), and crash safety is weaker than promised.
            if mode not in ("wal", "memory"):
                _log.warning(
                    "SQLite refused WAL mode (journal_mode=%s); is the file on a network share?", mode
                )
        else:
            cursor.execute(f"PRAGMA {pragma}")


def _switch_journal_mode(cursor: Any, pragma: str) -> None:
    # Several connections switching a brand-new file to WAL at once (the station, a report and a
    # second GUI starting together) can deadlock on the lock upgrade; SQLite then answers
    # "database is locked" at once instead of calling the busy handler. Wait as a write would.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            cursor.execute(f"PRAGMA {pragma}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
