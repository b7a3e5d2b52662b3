"""Fixtures of the visual log tests: a SQLite file, and PostgreSQL when one is given.

Set ``INSPECTOR_TEST_PG_URL`` (CI: ``postgresql+psycopg://inspector:inspector@127.0.0.1:5432/
inspector_test``) to run the backend-neutral tests against PostgreSQL as well.

Migrating a fresh database takes a tenth of a second on SQLite and most of a second on
PostgreSQL (every table is a few files), which adds up over the suite. So SQLite tests start
from a copy of one migrated empty file, and PostgreSQL tests share one migrated schema (dropped
at the end) that is emptied before each test, as its owner, with the append-only triggers off
for that moment. The migration tests (``fresh_db_url``) migrate fresh databases for real.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from storage_helpers import FakeClock, login

from core.storage import VisualLog
from core.storage.auth import Actor

PG_URL = os.environ.get("INSPECTOR_TEST_PG_URL")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite visual log at the newest schema revision."""
    path = tmp_path_factory.mktemp("template") / "inspector.sqlite"
    VisualLog(f"sqlite:///{path}", media_root=path.parent / "media").close()
    assert not path.with_name(path.name + "-wal").exists()  # closed cleanly: one self-contained file
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "db" / "inspector.sqlite"
    target.parent.mkdir(parents=True)
    shutil.copyfile(migrated_template, target)
    return f"sqlite:///{target}"


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose connections use a fresh, empty PostgreSQL schema; dropped afterwards."""
    assert PG_URL
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

# Children before parents; the seeded roles and the system user stay.
_PG_TABLES = (
    ("access_events", ""),
    ("pruned_ranges", ""),
    ("retention_runs", ""),
    ("keep_marks", ""),
    ("reviews", ""),
    ("threshold_changes", ""),
    ("decisions", ""),
    ("users", "WHERE name <> 'system'"),
    ("model_versions", ""),
    ("stations", ""),
    ("shifts", ""),
    ("alarm_events", ""),
)


@pytest.fixture(scope="session")
def pg_shared_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PG_URL:
        pytest.skip("set INSPECTOR_TEST_PG_URL to run the visual log tests on PostgreSQL")
    with pg_schema() as url:
        VisualLog(url, media_root=tmp_path_factory.mktemp("pg-media")).close()
        yield url


def _emptied(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for table, where in _PG_TABLES:
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
                connection.execute(text(f"DELETE FROM {table} {where}"))
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_template: Path) -> str:
    """A migrated, empty visual log on each backend."""
    if request.param == "postgresql":
        return _emptied(request.getfixturevalue("pg_shared_url"))
    target = tmp_path / "db" / "inspector.sqlite"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=BACKENDS)
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend, not migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'inspector.sqlite'}"
        return
    if not PG_URL:
        pytest.skip("set INSPECTOR_TEST_PG_URL to run the visual log tests on PostgreSQL")
    with pg_schema() as url:
        yield url


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def open_log(media_root: Path) -> Iterator[Callable[..., VisualLog]]:
    """Opens logs with the test's media root and a fake clock; closes them all afterwards."""
    logs: list[VisualLog] = []

    def open_(url: str, **kwargs: Any) -> VisualLog:
        kwargs.setdefault("media_root", media_root)
        kwargs.setdefault("clock", FakeClock())
        log = VisualLog(url, **kwargs)
        logs.append(log)
        return log

    yield open_
    for log in logs:
        log.close()


@pytest.fixture
def log(db_url: str, open_log: Callable[..., VisualLog]) -> VisualLog:
    return open_log(db_url)


@pytest.fixture
def log_sqlite(sqlite_url: str, open_log: Callable[..., VisualLog]) -> VisualLog:
    return open_log(sqlite_url)


@pytest.fixture
def supervisor(log: VisualLog) -> Actor:
    """Anna, a supervisor, logged in."""
    return login(log, "anna", "supervisor")
