"""Attacks on the visual log, done for real: each must be refused by the database or flagged by verify-log.

The attacker has SQL access to the database (and, where said, the files of the media root) and
wants a bad part to disappear or to look different. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from storage_helpers import MODEL_HASH, FakeClock, make_inspection, make_part, rows_in_db, tamper

from core.cli import main
from core.common.fileio import sha256_bytes
from core.common.types import Decision, Verdict
from core.storage import ChainHead, VisualLog
from core.storage.chain import decision_hash
from core.storage.retention import RetentionPolicy


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _row(log: VisualLog, part_id: str) -> Any:
    with log.engine.connect() as connection:
        return connection.execute(
            text("SELECT station_id, seq, row_hash, created_at FROM decisions WHERE part_id = :p"),
            {"p": part_id},
        ).one()


def _forge_retention(
    log: VisualLog, decision: Decision, *, cutoff: datetime, run_at: datetime, newest: datetime | None = None
) -> None:
    """Pose as retention: a run whose cut-off covers ``decision``, and a pruned range over it."""
    station_id, seq, row_hash, _ = _row(log, decision.part_id)
    with log.engine.begin() as connection:
        values: dict[str, Any] = {"s": station_id, "at": run_at, "c": cutoff}
        run_id = connection.execute(
            text(
                'INSERT INTO retention_runs (station_id, created_at, "user", reason, good_before, bad_before,'
                " not_inspected_before) VALUES (:s, :at, 'retention', 'nightly', :c, :c, :c) RETURNING id"
            ),
            values,
        ).scalar_one()
        columns = {c["name"] for c in inspect(connection).get_columns("pruned_ranges")}
        extra = ", newest_at" if "newest_at" in columns else ""  # a careful attacker fills every column
        connection.execute(
            text(
                f"INSERT INTO pruned_ranges (station_id, first_seq, last_seq, last_hash, run_id{extra})"
                f" VALUES (:s, :q, :q, :h, :r{', :n' if extra else ''})"
            ),
            {
                "s": station_id,
                "q": seq,
                "h": row_hash,
                "r": run_id,
                "n": _naive_for_sqlite(log, newest or decision.created_at),
            },
        )


def _naive_for_sqlite(log: VisualLog, value: datetime) -> datetime:
    return value.replace(tzinfo=None) if log.engine.dialect.name == "sqlite" else value


# ------------------------------------------------------------------ 1. posing as retention


def test_a_forged_retention_run_cannot_delete_a_fresh_bad_decision(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    log = open_log(db_url, clock=_wall_clock)
    log.record(make_part(), make_inspection(score=0.2), model_hash=MODEL_HASH)
    bad = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    head = log.chain_head()
    now = datetime.now(UTC)
    _forge_retention(
        log, bad, cutoff=_naive_for_sqlite(log, now), run_at=_naive_for_sqlite(log, now + timedelta(days=400))
    )

    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM decisions WHERE part_id = :p"), {"p": bad.part_id})
    assert log.get(bad.part_id) == bad
    assert log.chain_head() == head


def test_a_forged_run_with_a_cutoff_past_the_minimum_age_cannot_delete_a_younger_decision(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    # Two days old: a cut-off of a day ago is past the good parts' floor, but the decision is bad.
    log = open_log(db_url, clock=FakeClock(datetime.now(UTC) - timedelta(days=2)))
    bad = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    now = datetime.now(UTC)
    _forge_retention(
        log, bad, cutoff=_naive_for_sqlite(log, now - timedelta(days=1)), run_at=_naive_for_sqlite(log, now)
    )
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM decisions WHERE part_id = :p"), {"p": bad.part_id})
    assert log.get(bad.part_id) == bad


def test_a_forged_range_cannot_delete_a_kept_decision_even_without_foreign_keys(
    sqlite_url: str, open_log: Callable[..., VisualLog]
) -> None:
    # The sqlite3 shell has foreign keys off: only the trigger stands between it and a kept row.
    log = open_log(sqlite_url)  # 2025: old enough for any cut-off
    kept = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH, keep=True)
    _forge_retention(log, kept, cutoff=datetime(2026, 1, 1), run_at=datetime(2026, 1, 2))
    import sqlite3

    database = log.engine.url.database
    assert database is not None
    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 0
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM decisions WHERE part_id = ?", (kept.part_id,))
    finally:
        connection.close()
    assert log.get(kept.part_id) == kept


@pytest.mark.parametrize("forgery", ["run dated ahead", "range dated back"])
def test_verify_log_flags_a_pruned_range_its_run_cannot_justify(
    db_url: str, open_log: Callable[..., VisualLog], capsys: pytest.CaptureFixture[str], forgery: str
) -> None:
    # Triggers switched off: the row goes, and a forged run and range cover the gap.
    log = open_log(db_url, clock=_wall_clock)
    log.record(make_part(), make_inspection(score=0.2), model_hash=MODEL_HASH)
    bad = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    now = datetime.now(UTC)
    if forgery == "run dated ahead":  # the run's cut-offs look old enough from a year ahead
        cutoff, run_at, newest = now, now + timedelta(days=400), bad.created_at
    else:  # an honest-looking run, and a range that claims its decision was old
        cutoff, run_at, newest = now - timedelta(days=8), now, now - timedelta(days=9)
    _forge_retention(
        log, bad, cutoff=_naive_for_sqlite(log, cutoff), run_at=_naive_for_sqlite(log, run_at), newest=newest
    )
    tamper(log, "decisions", "DELETE FROM decisions WHERE part_id = :p", p=bad.part_id)

    result = log.verify()
    assert not result.ok and result.broken_at == 2
    assert result.problem is not None and "retention run" in result.problem
    assert main(["verify-log", "--db", db_url]) == 1
    assert "BROKEN at record 2" in capsys.readouterr().out


def test_genuine_retention_still_removes_old_decisions_and_verifies(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    start = datetime.now(UTC) - timedelta(days=10.5)
    log = open_log(db_url, clock=FakeClock(start, timedelta(days=1)))
    decisions = [  # aged 10.5 days down to half a day, bad and good in turn
        log.record(make_part(), make_inspection(score=0.9 if i % 2 else 0.1), model_hash=MODEL_HASH)
        for i in range(11)
    ]
    # A policy younger than the database's floor is clamped to it: nothing under a week-old bad goes.
    result = log.prune(RetentionPolicy(good_days=0.5, bad_days=0.5), now=datetime.now(UTC))
    survivors = {d.part_id for d in log.find(limit=None)}
    for decision in decisions:
        age = datetime.now(UTC) - decision.created_at
        floor = timedelta(days=7 if decision.verdict is Verdict.BAD else 1)
        assert (decision.part_id in survivors) == (age < floor + timedelta(minutes=2))
    assert result.decisions == len(decisions) - len(survivors) > 0
    assert rows_in_db(log) == len(survivors)
    assert log.verify().ok


# ------------------------------------------------------------------ 2. images and heatmaps


def test_a_replaced_heatmap_or_a_deleted_image_is_found_by_verify_log_media(
    db_url: str, open_log: Callable[..., VisualLog], media_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = open_log(db_url)
    first = log.record(make_part(), make_inspection(score=0.95, seed=1), model_hash=MODEL_HASH)
    second = log.record(make_part(), make_inspection(score=0.1, seed=2), model_hash=MODEL_HASH)
    db = ["--db", db_url, "--media-root", str(media_root)]
    assert main(["verify-log", "--media", *db]) == 0
    assert "media ok, 4 files" in capsys.readouterr().out

    # The bad part's heatmap swapped for the good part's (a valid PNG), the good part's image deleted.
    assert first.heatmap_path is not None and second.heatmap_path is not None and second.image_path
    shutil.copyfile(log.media_path(second.heatmap_path), log.media_path(first.heatmap_path))
    log.media_path(second.image_path).unlink()

    assert log.verify().ok  # the rows are untouched
    media = log.verify_media()
    assert {(p.part_id, p.path, p.problem) for p in media.problems} == {
        (first.part_id, first.heatmap_path, "changed"),
        (second.part_id, second.image_path, "missing"),
    }
    assert main(["verify-log", "--media", *db]) == 1
    out = capsys.readouterr().out
    assert "media BROKEN: 1 missing, 1 changed of 4 files" in out
    assert f"changed: {first.heatmap_path}" in out and f"missing: {second.image_path}" in out


def test_the_recorded_file_hash_is_a_link_of_the_chain(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    log = open_log(db_url)
    decision = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    assert decision.heatmap_path is not None
    # Replace the heatmap, and record the new file's hash so that --media agrees: the chain does not.
    path = log.media_path(decision.heatmap_path)
    path.write_bytes(path.read_bytes() + b"\0")
    tamper(
        log,
        "decisions",
        "UPDATE decisions SET heatmap_sha256 = :h WHERE part_id = :p",
        h=sha256_bytes(path.read_bytes()),
        p=decision.part_id,
    )
    assert log.verify_media().ok
    result = log.verify()
    assert not result.ok and result.broken_at == 1


def test_a_decision_cannot_fall_back_to_the_hash_form_without_media(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    log = open_log(db_url)
    log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    decision = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    # Rewritten in the old form (no file hashes), with its hash and the head recomputed to match.
    station_id, seq, _, _ = _row(log, decision.part_id)
    with log.engine.connect() as connection:
        previous = connection.execute(
            text("SELECT row_hash FROM decisions WHERE station_id = :s AND seq = :q"),
            {"s": station_id, "q": seq - 1},
        ).scalar_one()
    old_form = decision_hash(
        previous,
        station=decision.station,
        seq=seq,
        part_id=decision.part_id,
        created_at=decision.created_at,
        source_ref=decision.source_ref,
        content_hash=decision.content_hash,
        verdict=decision.verdict.value,
        score=decision.score,
        threshold=decision.threshold,
        reason=decision.reason,
        latency_ms=decision.latency_ms,
        model_hash=decision.model_hash,
        image_path=decision.image_path,
        heatmap_path=decision.heatmap_path,
        media_bytes=_media_bytes(log, decision.part_id),
    )
    tamper(
        log,
        "decisions",
        "UPDATE decisions SET hash_version = 1, image_sha256 = NULL, heatmap_sha256 = NULL, row_hash = :h"
        " WHERE part_id = :p",
        h=old_form,
        p=decision.part_id,
    )
    tamper(log, "stations", "UPDATE stations SET head_hash = :h WHERE id = :s", h=old_form, s=station_id)
    result = log.verify()
    assert not result.ok and result.broken_at == seq
    assert result.problem is not None and "hash version" in result.problem


def _media_bytes(log: VisualLog, part_id: str) -> int:
    with log.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT media_bytes FROM decisions WHERE part_id = :p"), {"p": part_id}
            ).scalar_one()
        )


def test_files_of_pruned_decisions_are_gone_legitimately(
    db_url: str, open_log: Callable[..., VisualLog], media_root: Path
) -> None:
    log = open_log(db_url)  # 2025: old enough
    old = log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    result = log.prune(RetentionPolicy(good_days=1, bad_days=None), now=datetime(2025, 6, 1, tzinfo=UTC))
    assert result.decisions == 1 and log.get(old.part_id) is None
    assert log.verify().ok
    media = log.verify_media()
    assert media.ok and media.files == 2 and media.unhashed == 0


# ------------------------------------------------------------------ 3. an anchored head


def _newest_removed_and_head_reset(log: VisualLog, decisions: list[Decision], keep: int) -> None:
    """Delete every decision after the first ``keep`` and set the head back: the chain verifies."""
    gone = [d.part_id for d in decisions[keep:]]
    station_id, seq, row_hash, _ = _row(log, decisions[keep - 1].part_id)
    for part_id in gone:
        tamper(log, "decisions", "DELETE FROM decisions WHERE part_id = :p", p=part_id)
    tamper(
        log,
        "stations",
        "UPDATE stations SET head_seq = :q, head_hash = :h WHERE id = :s",
        q=seq,
        h=row_hash,
        s=station_id,
    )


def _rehash_from(log: VisualLog, decisions: list[Decision], start: int) -> None:
    """Recompute every decision's hash from ``start`` on, and the head, as a careful forger would."""
    with log.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT part_id, station_id, seq, row_hash, verdict, score, media_bytes, hash_version, image_sha256,"
                " heatmap_sha256 FROM decisions ORDER BY seq"
            )
        ).all()
    by_id = {d.part_id: d for d in decisions}
    previous = rows[start - 1].row_hash
    for row in rows[start:]:
        d = by_id[row.part_id]
        previous = decision_hash(
            previous,
            station=d.station,
            seq=row.seq,
            part_id=d.part_id,
            created_at=d.created_at,
            source_ref=d.source_ref,
            content_hash=d.content_hash,
            verdict=row.verdict,
            score=row.score,
            threshold=d.threshold,
            reason=d.reason,
            latency_ms=d.latency_ms,
            model_hash=d.model_hash,
            image_path=d.image_path,
            heatmap_path=d.heatmap_path,
            media_bytes=row.media_bytes,
            hash_version=row.hash_version,
            image_sha256=row.image_sha256,
            heatmap_sha256=row.heatmap_sha256,
        )
        tamper(
            log, "decisions", "UPDATE decisions SET row_hash = :h WHERE part_id = :p", h=previous, p=d.part_id
        )
    tamper(
        log, "stations", "UPDATE stations SET head_hash = :h WHERE id = :s", h=previous, s=rows[0].station_id
    )


def test_dropping_the_newest_rows_is_caught_against_a_shift_report_and_a_typed_head(
    db_url: str, open_log: Callable[..., VisualLog], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.reports import ShiftPlan, write_shift_report

    log = open_log(db_url, station="line-1")
    decisions = [
        log.record(make_part(), make_inspection(score=0.95 if i == 4 else 0.1), model_hash=MODEL_HASH)
        for i in range(5)
    ]
    plan = ShiftPlan.parse("06:00=early,14:00=late,22:00=night", "UTC")
    report = write_shift_report(log, plan.resolve("2025-03-14/early", log.now()), tmp_path / "reports")
    assert report.summary["chain_head_seq"] == "5"
    typed = f"line-1:{log.chain_head()}"

    _newest_removed_and_head_reset(log, decisions, keep=3)
    assert log.verify().ok  # the chain alone cannot tell
    db = ["verify-log", "--db", db_url]
    for anchor in (str(report.summary_csv), typed, str(log.chain_head()).replace("3:", "5:", 1)):
        capsys.readouterr()
        code = main([*db, "--against", anchor])
        out = capsys.readouterr().out
        if anchor.startswith("5:"):  # a wrong hash typed for record 5 fails too (record 5 is gone)
            assert code == 1 and "rows were removed or rewritten after the anchor" in out
            continue
        assert code == 1, out
        assert "ANCHOR BROKEN: rows were removed or rewritten after the anchor 5:" in out
    assert main([*db, "--against", "line-1:3:nothex"]) == 2


def test_an_edit_with_every_later_hash_recomputed_is_caught_against_a_backup(
    sqlite_url: str, open_log: Callable[..., VisualLog], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = open_log(sqlite_url, station="line-1")
    decisions = [
        log.record(make_part(), make_inspection(score=0.95 if i == 1 else 0.1), model_hash=MODEL_HASH)
        for i in range(4)
    ]
    assert main(["backup", str(tmp_path / "backups"), "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert f"chain head line-1: {log.chain_head()}" in out
    [heads_file] = (tmp_path / "backups").glob("*.heads")
    assert heads_file.read_text() == f"line-1\t{log.chain_head()}\n"
    assert main(["verify-log", "--db", sqlite_url, "--against", str(heads_file)]) == 0

    # The bad part becomes good; its hash and every later one are recomputed, and the head.
    tamper(
        log,
        "decisions",
        "UPDATE decisions SET verdict = 'good', score = 0.2 WHERE part_id = :p",
        p=decisions[1].part_id,
    )
    _rehash_from(log, decisions, start=1)
    assert log.verify().ok  # the chain alone cannot tell
    capsys.readouterr()
    assert main(["verify-log", "--db", sqlite_url, "--against", str(heads_file)]) == 1
    assert (
        "line-1: ANCHOR BROKEN: rows were removed or rewritten after the anchor 4:" in capsys.readouterr().out
    )


def test_an_anchor_still_holds_after_genuine_retention(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    log = open_log(db_url)  # 2025: old enough
    decisions = [log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH) for _ in range(3)]
    anchors = [ChainHead(seq=i + 1, hash=_row(log, d.part_id).row_hash) for i, d in enumerate(decisions)]
    log.record(make_part(), make_inspection(score=0.1), model_hash=MODEL_HASH)
    log.prune(RetentionPolicy(good_days=1), now=decisions[2].created_at + timedelta(days=1, seconds=1))
    assert log.get(decisions[2].part_id) is None and log.verify().ok
    assert [log.check_anchor(a) for a in anchors] == [None, None, None]


# ------------------------------------------------------------------ 4. orphans of crashed writes


def test_opening_the_log_removes_old_orphan_media_files_only(
    db_url: str, open_log: Callable[..., VisualLog], media_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = open_log(db_url)
    decision = log.record(make_part(), make_inspection(score=0.95), model_hash=MODEL_HASH)
    assert decision.image_path is not None and decision.heatmap_path is not None
    folder = log.media_path(decision.image_path).parent
    orphan = folder / "01JP0000000000000000000077.png"  # written, then the process died
    leftover = folder / "01JP0000000000000000000078_heatmap.png.part"
    fresh = folder / "01JP0000000000000000000079.png"  # a writer in flight
    for path in (orphan, leftover, fresh):
        path.write_bytes(b"\x89PNG\r\n\x1a\n")
    an_hour_ago = datetime.now(UTC).timestamp() - 3600
    for path in (
        orphan,
        leftover,
        log.media_path(decision.image_path),
        log.media_path(decision.heatmap_path),
    ):
        os.utime(path, (an_hour_ago, an_hour_ago))

    with caplog.at_level("WARNING", logger="core.storage.orphans"):
        reopened = open_log(db_url)
    assert reopened.orphans_removed == 2
    assert "removed 2 orphan media files" in caplog.text
    assert not orphan.exists() and not leftover.exists() and fresh.exists()
    assert log.media_path(decision.image_path).exists() and log.media_path(decision.heatmap_path).exists()
    assert reopened.verify_media().ok
