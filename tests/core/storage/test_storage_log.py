"""The visual log against a real database: a SQLite file, and PostgreSQL when one is given."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from storage_helpers import (
    MODEL_HASH,
    START,
    FakeClock,
    is_postgres,
    make_inspection,
    make_part,
    media_files,
    rows_in_db,
)

from core.common.fileio import sha256_bytes
from core.common.types import Decision, Inspection, Verdict
from core.storage import DuplicatePartError, Entry, StorageError, VisualLog, make_engine
from core.storage.auth import Actor

# ---------------------------------------------------------------------------- recording


def test_record_inspected_part_stores_row_image_and_heatmap(log: VisualLog, media_root: Path) -> None:
    part = make_part(content_hash="c" * 64)
    inspection = make_inspection(score=0.8, threshold=0.5)

    decision = log.record(part, inspection, model_hash=MODEL_HASH, model_name="tiny")

    day = "2025/03/14"
    assert decision == Decision(
        part_id=part.part_id,
        station="station-1",
        source_ref="cam-1#frame-7",
        created_at=START,
        content_hash="c" * 64,
        verdict=Verdict.BAD,
        score=0.8,
        threshold=0.5,
        reason=None,
        latency_ms=12.5,
        model_hash=MODEL_HASH,
        image_path=f"{day}/{part.part_id}.png",
        heatmap_path=f"{day}/{part.part_id}_heatmap.png",
    )
    assert decision.created_at.tzinfo is not None and decision.created_at.utcoffset() == timedelta(0)
    assert log.get(part.part_id) == decision
    assert rows_in_db(log) == 1

    assert decision.image_path is not None and decision.heatmap_path is not None
    image_file = log.media_path(decision.image_path)
    heatmap_file = log.media_path(decision.heatmap_path)
    assert media_files(media_root) == sorted([image_file, heatmap_file])
    stored_image = cv2.imdecode(np.frombuffer(image_file.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(stored_image, part.image)

    png = heatmap_file.read_bytes()
    assert (png[24], png[25]) == (8, 0)  # IHDR: bit depth 8, colour type 0 (grayscale)
    heatmap = log.load_heatmap(decision)
    assert heatmap is not None and heatmap.dtype == np.uint8
    np.testing.assert_array_equal(heatmap, inspection.heatmap)
    assert heatmap.tobytes() == inspection.heatmap.tobytes()


def test_record_keeps_original_bytes_with_their_extension(log: VisualLog) -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8))
    assert ok
    encoded = jpeg.tobytes()

    from_file = log.record(
        make_part(source_ref="/inbox/Prüfteil 7.JPEG", encoded=encoded),
        make_inspection(),
        model_hash=MODEL_HASH,
    )
    from_camera = log.record(make_part(encoded=encoded), make_inspection(), model_hash=MODEL_HASH)

    assert from_file.image_path is not None and from_file.image_path.endswith(".jpeg")
    assert from_camera.image_path is not None and from_camera.image_path.endswith(".jpg")  # sniffed
    for decision in (from_file, from_camera):
        assert decision.image_path is not None
        assert log.media_path(decision.image_path).read_bytes() == encoded
        assert decision.content_hash == sha256_bytes(encoded)


def test_not_inspected_part_keeps_its_reason_and_has_no_heatmap(log: VisualLog, media_root: Path) -> None:
    broken = make_part(image=False, error="truncated JPEG")
    decision = log.record(broken, None, model_hash=None)

    assert decision.verdict is Verdict.NOT_INSPECTED
    assert decision.reason == "truncated JPEG"
    assert (decision.score, decision.threshold, decision.latency_ms, decision.model_hash) == (None,) * 4
    assert decision.heatmap_path is None and decision.image_path is None
    assert log.load_heatmap(decision) is None
    assert log.get(broken.part_id) == decision

    overflow = log.record(make_part(), None, model_hash=MODEL_HASH, reason="queue full")
    assert overflow.reason == "queue full" and overflow.heatmap_path is None
    assert overflow.image_path is not None and overflow.model_hash == MODEL_HASH
    assert [p.name for p in media_files(media_root)] == [f"{overflow.part_id}.png"]


def test_inconsistent_calls_are_refused_before_anything_is_written(log: VisualLog, media_root: Path) -> None:
    with pytest.raises(ValueError, match="reason"):
        log.record(make_part(), None, model_hash=None)
    with pytest.raises(ValueError, match="model's hash"):
        log.record(make_part(), make_inspection(), model_hash=None)
    with pytest.raises(ValueError, match="SHA-256"):
        log.record(make_part(), make_inspection(), model_hash="not-a-hash")
    float_heatmap = Inspection(score=0.1, threshold=0.5, heatmap=np.zeros((4, 4)), latency_ms=1.0)
    with pytest.raises(ValueError, match="uint8"):
        log.record(make_part(), float_heatmap, model_hash=MODEL_HASH)
    with pytest.raises(ValueError, match="ULID"):
        log.record(make_part(part_id="../../etc/passwd"), make_inspection(), model_hash=MODEL_HASH)

    assert rows_in_db(log) == 0
    assert media_files(media_root) == []


def test_times_are_stored_as_utc(db_url: str, open_log: Callable[..., VisualLog]) -> None:
    local = datetime(2025, 3, 15, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # 14 March, 23:00 UTC
    log = open_log(db_url, clock=lambda: local)

    decision = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)

    assert decision.created_at == local and decision.created_at.tzinfo == UTC
    assert decision.image_path is not None and decision.image_path.startswith("2025/03/14/")
    assert log.get(decision.part_id) == decision

    naive = open_log(db_url, clock=lambda: datetime(2025, 3, 15, 1, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        naive.record(make_part(), make_inspection(), model_hash=MODEL_HASH)


# ---------------------------------------------------------------------------- integrity


def test_records_are_append_only(log: VisualLog, db_url: str, supervisor: Actor) -> None:
    part = make_part()
    log.record(part, make_inspection(score=0.9), model_hash=MODEL_HASH, keep=True)
    log.review(part.part_id, verdict=Verdict.GOOD, actor=supervisor)
    log.record_threshold_change(0.5, 0.6, actor=supervisor, reason="fewer false rejects")
    log.prune()  # nothing is old enough: records no run

    tables = (
        "decisions",
        "threshold_changes",
        "reviews",
        "keep_marks",
        "retention_runs",
        "pruned_ranges",
        "access_events",  # the supervisor's log-in
    )
    statements = [
        "UPDATE decisions SET verdict = 'good'",
        f"DELETE FROM decisions WHERE part_id = '{part.part_id}'",
    ]
    statements += [f"UPDATE {table} SET id = id" for table in tables[1:]]
    statements += [f"DELETE FROM {table}" for table in tables[1:]]
    if is_postgres(db_url):
        statements += [f"TRUNCATE {table} CASCADE" for table in tables]
    before = {table: rows_in_db(log, table) for table in tables}
    for statement in statements:
        # Empty tables: the triggers fire per row, so only PostgreSQL's TRUNCATE trigger shows.
        empty = "pruned_ranges" in statement or "retention_runs" in statement
        if empty and "TRUNCATE" not in statement:
            continue
        with pytest.raises(DBAPIError, match="append-only"), log.engine.begin() as connection:
            connection.execute(text(statement))

    decision = log.get(part.part_id)
    assert decision is not None and decision.verdict is Verdict.BAD
    assert {table: rows_in_db(log, table) for table in tables} == before
    assert log.verify().ok


def test_chain_head_never_moves_backwards(log: VisualLog) -> None:
    log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    with pytest.raises(DBAPIError, match="never moves backwards"), log.engine.begin() as connection:
        connection.execute(text("UPDATE stations SET head_seq = 0"))
    assert log.chain_head().seq == 1


def test_duplicate_part_id_is_refused_and_first_record_kept(log: VisualLog) -> None:
    part = make_part()
    first = log.record(part, make_inspection(score=0.9, seed=1), model_hash=MODEL_HASH)
    assert first.heatmap_path is not None
    heatmap_bytes = log.media_path(first.heatmap_path).read_bytes()

    with pytest.raises(DuplicatePartError, match=part.part_id):
        log.record(part, make_inspection(score=0.1, seed=2), model_hash=MODEL_HASH)

    assert rows_in_db(log) == 1
    assert log.get(part.part_id) == first
    # The refused record did not overwrite the first one's heatmap (same day, same name).
    assert log.media_path(first.heatmap_path).read_bytes() == heatmap_bytes


def test_group_commit_records_each_part_once_in_order_on_one_chain(log: VisualLog, media_root: Path) -> None:
    single = log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    parts = [make_part(source_ref=f"cam-1#frame-{i}") for i in range(5)]
    entries = [
        Entry(part=parts[0], inspection=make_inspection(score=0.9, seed=3)),
        Entry(part=parts[1], inspection=None, reason="not inspected: truncated JPEG"),
        Entry(part=parts[2], inspection=make_inspection(score=0.2, seed=4), keep=True),
        Entry(part=parts[3], inspection=make_inspection(score=0.6, seed=5)),
        Entry(part=parts[4], inspection=make_inspection(score=0.4, seed=6)),
    ]
    decisions = log.record_many(entries, model_hash=MODEL_HASH)

    assert [d.part_id for d in decisions] == [p.part_id for p in parts]
    assert [d.verdict for d in decisions] == [
        Verdict.BAD, Verdict.NOT_INSPECTED, Verdict.GOOD, Verdict.BAD, Verdict.GOOD
    ]  # fmt: skip
    assert rows_in_db(log) == 6
    assert [log.get(p.part_id) for p in parts] == decisions
    assert log.latest(6)[-1] == single
    # One image per part and one heatmap per inspected part, each where its row says.
    assert len(media_files(media_root)) == 2 * 6 - 1
    for d in decisions:
        for relative in (d.image_path, d.heatmap_path):
            if relative is not None:
                assert log.media_path(relative).is_file()
    assert log.chain_head().seq == 6
    verification = log.verify()
    assert verification.ok and verification.records == 6, verification.problem
    assert rows_in_db(log, "keep_marks") == 1


def test_group_commit_is_all_or_nothing(log: VisualLog, media_root: Path) -> None:
    taken = make_part()
    log.record(taken, make_inspection(), model_hash=MODEL_HASH)
    files_before = media_files(media_root)
    fresh = make_part(source_ref="cam-1#frame-8")
    entries = [
        Entry(part=fresh, inspection=make_inspection()),
        Entry(part=taken, inspection=make_inspection()),
    ]

    with pytest.raises(DuplicatePartError, match=taken.part_id):
        log.record_many(entries, model_hash=MODEL_HASH)
    with pytest.raises(ValueError, match="reason is required"):
        log.record_many([Entry(part=fresh, inspection=make_inspection()), Entry(part=make_part(), inspection=None)],
                        model_hash=MODEL_HASH)  # fmt: skip

    assert rows_in_db(log) == 1 and log.get(fresh.part_id) is None
    assert media_files(media_root) == files_before
    # The chain did not move, so the next append links on the first record.
    again = log.record_many([Entry(part=fresh, inspection=make_inspection())], model_hash=MODEL_HASH)
    assert again[0].part_id == fresh.part_id and log.chain_head().seq == 2 and log.verify().ok


def test_reopening_keeps_rows(db_url: str, open_log: Callable[..., VisualLog]) -> None:
    first_log = open_log(db_url)
    recorded = [
        first_log.record(make_part(), make_inspection(), model_hash=MODEL_HASH),
        first_log.record(make_part(image=False, error="no image"), None, model_hash=None),
    ]
    first_log.close()

    reopened = open_log(db_url, clock=FakeClock(START + timedelta(hours=1)))  # triggers again: idempotent
    assert [reopened.get(d.part_id) for d in recorded] == recorded
    assert reopened.latest() == recorded[::-1]

    later = reopened.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    assert reopened.latest(1) == [later]
    assert reopened.count() == 3


def test_latest_is_newest_first_and_counts_cover_every_verdict(log: VisualLog) -> None:
    assert log.latest() == []
    assert log.counts() == {Verdict.GOOD: 0, Verdict.BAD: 0, Verdict.NOT_INSPECTED: 0}

    scores = [0.1, 0.9, 0.2, None, 0.7]
    recorded = [
        log.record(make_part(), make_inspection(score=s), model_hash=MODEL_HASH)
        if s is not None
        else log.record(make_part(image=False, error="unreadable"), None, model_hash=None)
        for s in scores
    ]

    assert log.latest() == recorded[::-1]
    assert log.latest(2) == recorded[:-3:-1]
    assert [d.verdict for d in recorded] == [
        Verdict.GOOD,
        Verdict.BAD,
        Verdict.GOOD,
        Verdict.NOT_INSPECTED,
        Verdict.BAD,
    ]
    assert log.counts() == {Verdict.GOOD: 2, Verdict.BAD: 2, Verdict.NOT_INSPECTED: 1}
    assert (log.count(), log.count(Verdict.BAD), log.count(Verdict.NOT_INSPECTED)) == (5, 2, 1)


def test_queries_are_scoped_to_the_station(db_url: str, open_log: Callable[..., VisualLog]) -> None:
    line_a = open_log(db_url, station="line-a")
    line_b = open_log(db_url, station="line-b")
    a = line_a.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    b = line_b.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)

    assert line_a.latest() == [a] and line_b.latest() == [b]
    assert line_a.counts()[Verdict.GOOD] == 0 and line_b.count(Verdict.GOOD) == 1
    assert line_a.get(b.part_id) == b  # a part id is unique across stations


# ---------------------------------------------------------------------------- SQLite settings


def test_sqlite_pragmas_are_in_force_on_this_engine_only(log_sqlite: VisualLog) -> None:
    with log_sqlite.engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}

    other = create_engine("sqlite://")
    try:
        with other.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
    finally:
        other.dispose()


def test_make_engine_creates_the_folder_of_the_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'log.sqlite'}")
    try:
        assert (tmp_path / "a" / "b").is_dir()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (tmp_path / "a" / "b" / "log.sqlite").is_file()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- environment failures


def on_every_checkout(engine: Engine, pragma: Callable[[], str]) -> None:
    """Run ``PRAGMA <pragma()>`` on each pooled connection the log checks out."""

    def apply(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.execute(f"PRAGMA {pragma()}")

    event.listen(engine, "checkout", apply)


def test_disk_full_raises_storage_error_and_recovers(log_sqlite: VisualLog, media_root: Path) -> None:
    log = log_sqlite
    kept = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    with log.engine.connect() as connection:
        pages_now = int(connection.exec_driver_sql("PRAGMA page_count").scalar_one())
    limit = {"pages": pages_now}  # no room to grow: the next big row must fail
    on_every_checkout(log.engine, lambda: f"max_page_count = {limit['pages']}")

    big = make_part(error="decoder failed: " + "x" * 64_000)
    with pytest.raises(StorageError, match="disk is full") as raised:
        log.record(big, None, model_hash=None)

    assert raised.value.problem == "disk_full"
    assert isinstance(raised.value, RuntimeError)
    assert log.get(big.part_id) is None
    assert log.get(kept.part_id) == kept
    assert log.count() == 1
    assert not any(big.part_id in p.name for p in media_files(media_root))  # orphan image removed

    limit["pages"] = 1_000_000  # space is back: the same log writes again, no reopen
    recorded = log.record(big, None, model_hash=None)
    assert log.get(big.part_id) == recorded
    assert log.count() == 2
    with log.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_locked_database_raises_storage_error_and_recovers(log_sqlite: VisualLog, sqlite_url: str) -> None:
    log = log_sqlite
    log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    on_every_checkout(log.engine, lambda: "busy_timeout = 50")  # keep the test fast

    database = make_url(sqlite_url).database
    assert database is not None
    other_program = sqlite3.connect(database, isolation_level=None)
    try:
        other_program.execute("BEGIN IMMEDIATE")  # holds the write lock
        part = make_part()
        with pytest.raises(StorageError, match="lock") as raised:
            log.record(part, make_inspection(), model_hash=MODEL_HASH)
        assert raised.value.problem == "locked"
        other_program.execute("ROLLBACK")
    finally:
        other_program.close()

    assert log.record(part, make_inspection(), model_hash=MODEL_HASH).part_id == part.part_id
    assert log.count() == 2


def test_full_media_disk_raises_storage_error_and_leaves_no_files(
    log_sqlite: VisualLog, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.storage.media as media_module

    real_write = media_module.write_atomic

    def write_until_heatmap(path: Path, data: bytes) -> None:
        if path.name.endswith("_heatmap.png"):
            path.with_name(path.name + ".part").write_bytes(data[:10])  # half written, then full
            raise OSError(errno.ENOSPC, "No space left on device", str(path) + ".part")
        real_write(path, data)

    monkeypatch.setattr(media_module, "write_atomic", write_until_heatmap)
    part = make_part()
    with pytest.raises(StorageError, match="disk is full") as raised:
        log_sqlite.record(part, make_inspection(), model_hash=MODEL_HASH)
    assert raised.value.problem == "disk_full"
    assert rows_in_db(log_sqlite) == 0
    assert media_files(media_root) == []  # the image and the half-written heatmap are gone

    monkeypatch.setattr(media_module, "write_atomic", real_write)
    decision = log_sqlite.record(part, make_inspection(), model_hash=MODEL_HASH)
    assert log_sqlite.load_heatmap(decision) is not None


def test_unwritable_location_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError) as raised:
        VisualLog(f"sqlite:///{blocker / 'log.sqlite'}", media_root=tmp_path / "media")
    assert "visual log" in str(raised.value)


def test_closed_log_refuses_use(log_sqlite: VisualLog) -> None:
    with log_sqlite as log:
        log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    with pytest.raises(RuntimeError, match="closed"):
        log_sqlite.count()


def test_model_versions_keep_their_name_and_metadata(log: VisualLog) -> None:
    card = {"architecture": "tiny_cnn", "threshold": 0.42, "classes": ["good", "bad"], "note": "Prüfung"}
    info = log.register_model(MODEL_HASH.upper(), name="tiny", metadata=card)
    assert (info.hash, info.name, info.metadata) == (MODEL_HASH, "tiny", card)
    decision = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH, model_name="renamed")
    assert decision.model_hash == MODEL_HASH
    # The first name and card stay: a hash always stands for the same file.
    assert log.register_model(MODEL_HASH, name="other", metadata={"x": 1}).metadata == card
    assert [(m.name, m.metadata) for m in log.models()] == [("tiny", card)]
    with pytest.raises(ValueError, match="SHA-256"):
        log.register_model("abc")
