"""SQLite's query planner statistics (``sqlite_stat1``), refreshed when they are missing or stale.

Without statistics SQLite guesses how selective each index is; with them it can tell a narrow
time range from a wide score band. A table is analyzed again when its statistics are missing
(once it holds ``MIN_ROWS`` rows) or when its row count has moved by more than a factor of
``DRIFT`` since they were taken; the check costs one ``count(*)`` per table.

A log refreshes them when it opens (after any migration: SQLite's table copies drop the copied
tables' statistics, and a station is more often powered off than closed), when it closes, and
after a retention run that removed decisions. ``PRAGMA optimize`` is not used: before SQLite
3.46 (Python 3.11 ships 3.40) it only considers tables that the planner used on the very
connection it runs on, while a log's work is spread over a pool of connections. The analysis is
a full one: ``analysis_limit`` samples only the first rows of each index, and on this schema
(station first in every index) it reports a station's rows as the limit, which is worse than no
statistics. A full ``ANALYZE`` of a million decisions takes about a second, and the drift rule
runs it about once per doubling of the table.

PostgreSQL keeps its own statistics (autovacuum's auto-analyze); nothing is done there.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from core.storage.db import WRITE

_log = logging.getLogger(__name__)

MIN_ROWS = 1000  # below this any plan answers at once, and an empty table's statistics mislead
DRIFT = 2.0


def refresh_statistics(engine: Engine) -> list[str]:
    """Analyze the tables of a SQLite log whose planner statistics are missing or stale.

    A database that refuses (locked past the busy timeout, read-only, disk full) is logged and
    left as it is: statistics only make queries faster, and a refresh is tried again later.

    Args:
        engine: The log's engine.

    Returns:
        The tables analyzed (none on PostgreSQL).
    """
    if engine.dialect.name != "sqlite":
        return []
    try:
        with engine.connect() as connection:
            stale = _stale_tables(connection)
        if stale:
            with engine.execution_options(**WRITE).begin() as connection:
                for table in stale:
                    connection.exec_driver_sql(f'ANALYZE "{table}"')
    except OperationalError as exc:
        _log.warning("planner statistics of %s not refreshed: %s", engine.url, exc.orig)
        return []
    if stale:
        _log.info("planner statistics refreshed for %s", ", ".join(stale))
    return stale


def analyzed_rows(connection: Connection) -> dict[str, int]:
    """The row count of each table as its statistics recorded it (tables without any are absent)."""
    has_stat1 = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    ).first()
    if has_stat1 is None:
        return {}
    rows: dict[str, int] = {}
    for table, stat in connection.execute(text("SELECT tbl, stat FROM sqlite_stat1")):
        # "N ..." where N is the number of rows (of the table, or of one of its indexes).
        first = str(stat or "").split(" ", 1)[0]
        if first.isdigit():
            rows[table] = max(rows.get(table, 0), int(first))
    return rows


def _stale_tables(connection: Connection) -> list[str]:
    analyzed = analyzed_rows(connection)
    tables = connection.execute(
        text("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    ).scalars()
    stale = []
    for table in tables:
        rows = int(connection.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one())
        before = analyzed.get(table)
        if max(rows, before or 0) < MIN_ROWS:
            continue  # small then and now: no plan is slow
        if before is None or not before / DRIFT <= rows <= before * DRIFT:
            stale.append(table)
    return stale
