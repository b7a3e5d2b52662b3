"""Schema migrations at start-up: fresh databases, the first version's files, backups, locks."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.command import upgrade as alembic_upgrade
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from storage_helpers import MODEL_HASH, login, make_inspection, make_part

from core.common.types import Verdict
from core.storage import StorageError, VisualLog, make_engine
from core.storage.migrate import HEAD_REVISION, MIGRATIONS, SchemaVersionError
from core.storage.schema import Base


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_head_revision_matches_the_migration_files() -> None:
    assert ScriptDirectory.from_config(_config()).get_current_head() == HEAD_REVISION


def test_a_fresh_database_is_migrated_to_exactly_the_orm_schema(
    fresh_db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    log = open_log(fresh_db_url)
    assert log.backup_before_upgrade is None  # nothing to back up
    with log.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    roles = {u.name: u.role.value for u in log.users()}
    assert roles == {"system": "admin"}
    # Records work on the migrated schema, sequences included (no explicit ids collide).
    anna = login(log, "anna")
    decision = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    log.review(decision.part_id, verdict=Verdict.GOOD, actor=anna)
    assert log.verify().ok


def _first_version_database(path: Path) -> list[str]:
    """A log as the first station version wrote it: revision 0001, no Alembic table, three rows."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        alembic_upgrade(config, "0001")
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(text("INSERT INTO stations (id, name) VALUES (1, 'line-1'), (2, 'line-2')"))
        connection.execute(
            text(
                "INSERT INTO model_versions (id, hash, name, created_at) VALUES (1, :h, 'tiny', '2025-01-01 00:00:00.000000')"
            ),
            {"h": MODEL_HASH},
        )
        rows = [
            ("01JP0000000000000000000003", 1, "2025-03-14 09:00:03.000000", "good", 0.2, 0.5, None, 1),
            ("01JP0000000000000000000001", 1, "2025-03-14 09:00:01.000000", "bad", 0.9, 0.5, None, 1),
            (
                "01JP0000000000000000000002",
                2,
                "2025-03-14 09:00:02.000000",
                "not_inspected",
                None,
                None,
                "empty file",
                None,
            ),
        ]
        for part_id, station, at, verdict, score, threshold, reason, model in rows:
            connection.execute(
                text(
                    "INSERT INTO decisions (part_id, station_id, created_at, source_ref, verdict, score, threshold,"
                    " reason, latency_ms, model_version_id, image_path, heatmap_path)"
                    " VALUES (:p, :s, :at, 'cam', :v, :score, :t, :r, 3.5, :m, NULL, NULL)"
                ),
                {
                    "p": part_id,
                    "s": station,
                    "at": at,
                    "v": verdict,
                    "score": score,
                    "t": threshold,
                    "r": reason,
                    "m": model,
                },
            )
        with pytest.raises(Exception, match="append-only"):
            connection.execute(text("DELETE FROM decisions"))
    engine.dispose()
    return [r[0] for r in rows]


def test_the_first_version_file_is_backed_up_then_upgraded_and_chained(
    tmp_path: Path, open_log: Callable[..., VisualLog]
) -> None:
    path = tmp_path / "old" / "inspector.sqlite"
    path.parent.mkdir()
    part_ids = _first_version_database(path)

    log = open_log(f"sqlite:///{path}", station="line-1", clock=lambda: datetime(2025, 3, 15, tzinfo=UTC))

    backup = log.backup_before_upgrade
    assert backup is not None and backup.parent == path.parent / "backups"
    assert backup.name.startswith(f"inspector.before-{HEAD_REVISION}.from-0001.")
    with sqlite3.connect(backup) as old:
        assert old.execute("SELECT count(*) FROM decisions").fetchone() == (3,)
        assert old.execute("SELECT name FROM sqlite_master WHERE name = 'alembic_version'").fetchone() is None
    with log.engine.connect() as connection:
        seqs = connection.execute(text("SELECT part_id, seq FROM decisions ORDER BY part_id")).all()
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
    # Oldest first within each station.
    assert [tuple(row) for row in seqs] == [(part_ids[1], 1), (part_ids[2], 1), (part_ids[0], 2)]
    assert log.verify().ok and log.verify(station="line-2").ok
    assert [d.part_id for d in log.latest()] == [part_ids[0], part_ids[1]]

    new = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    assert log.chain_head().seq == 3 and log.verify().ok
    assert log.get(new.part_id) == new
    # The stricter triggers are in place after the upgrade.
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("UPDATE decisions SET score = 0"))


def _together(target: Callable[[], None], count: int) -> list[BaseException]:
    """Run ``target`` on ``count`` threads released at the same moment; what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run() -> None:
        start.wait()
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_first_opens_migrate_once(tmp_path: Path, media_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"

    def open_and_record() -> None:
        with VisualLog(url, media_root=media_root, station="line-1") as log:
            log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)

    assert _together(open_and_record, 4) == []
    with VisualLog(url, media_root=media_root, station="line-1") as log:
        assert log.count() == 4 and log.verify().ok


def test_programs_opening_a_new_file_together_all_wait_for_the_wal_switch(tmp_path: Path) -> None:
    # The race behind a flaky start-up: SQLite answers "database is locked" at once (no busy
    # wait) when connections of separate engines (the station, a report, a second GUI) switch
    # one brand-new file to WAL together: 25 of 1,200 such connections failed on this machine
    # before the engine retried the switch.
    failures: list[BaseException] = []
    for attempt in range(60):
        url = f"sqlite:///{tmp_path / f'new-{attempt}.sqlite'}"

        def connect(url: str = url) -> None:
            engine = make_engine(url)
            try:
                with engine.connect() as connection:
                    assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            finally:
                engine.dispose()

        failures += _together(connect, 6)
    assert failures == []


def test_a_newer_database_is_refused(tmp_path: Path, media_root: Path, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="newer than this station knows"):
        VisualLog(sqlite_url, media_root=media_root)


def test_an_unreadable_file_is_a_storage_error(tmp_path: Path, media_root: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError) as raised:
        VisualLog(f"sqlite:///{path}", media_root=media_root)
    assert raised.value.problem == "corrupt"
