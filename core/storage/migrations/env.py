"""Alembic environment of the visual log.

At start-up ``core.storage.migrate`` hands over an open connection, already inside the
transaction that holds the migration lock, in ``config.attributes["connection"]``. Developers
may also run the ``alembic`` command with ``-x url=...`` (e.g. to autogenerate the next revision
against a scratch database).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from core.storage.db import make_engine
from core.storage.schema import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite can only change columns by copying the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:////path/to/inspector.sqlite ...")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the upgrade computes hashes")
run_migrations_online()
