"""Retention: files first, then rows; never what is kept or reviewed; the chain stays verifiable."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import text
from storage_helpers import (
    ADMIN_PASSWORD,
    MODEL_HASH,
    FakeClock,
    login,
    make_inspection,
    make_part,
    rows_in_db,
)

import core.storage.retention as retention_module
from core.cli import main
from core.common.types import Decision, Verdict
from core.storage import VisualLog
from core.storage.retention import RetentionPolicy

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
NO_AGE = RetentionPolicy(good_days=None, not_inspected_days=None, bad_days=None)


class Line(NamedTuple):
    log: VisualLog
    decisions: list[Decision]  # one a day from T0, in order


def _line(log_factory: Callable[..., VisualLog], url: str, pattern: str) -> Line:
    """One decision a day: g = good, b = bad, n = not inspected (no image), k = good kept, r = good reviewed."""
    log = log_factory(url, clock=FakeClock(T0, timedelta(days=1)))
    # Logged in on a log of its own: this one's clock advances a day per call.
    anna = login(log_factory(url), "anna")
    decisions = []
    for letter in pattern:
        if letter == "n":
            decision = log.record(make_part(image=False, error="empty file"), None, model_hash=None)
        else:
            score = 0.9 if letter == "b" else 0.1
            decision = log.record(
                make_part(), make_inspection(score=score), model_hash=MODEL_HASH, keep=letter == "k"
            )
            if letter == "r":
                log.review(decision.part_id, verdict=Verdict.GOOD, actor=anna)
        decisions.append(decision)
    return Line(log, decisions)


def _files_of(log: VisualLog, decision: Decision) -> list[Path]:
    return [log.media_path(p) for p in (decision.image_path, decision.heatmap_path) if p is not None]


def _seqs(log: VisualLog, decisions: list[Decision]) -> list[int]:
    with log.engine.connect() as connection:
        found = dict(connection.execute(text("SELECT part_id, seq FROM decisions")).all())
    return [found[d.part_id] for d in decisions]


def test_old_decisions_go_files_first_and_the_chain_still_verifies(
    db_url: str, open_log: Callable[..., VisualLog], media_root: Path
) -> None:
    pattern = "ggkgnrgbgggg"
    log, decisions = _line(open_log, db_url, pattern)
    head = log.chain_head()
    now = decisions[-3].created_at + timedelta(days=30, hours=1)  # the last two good parts are young
    policy = RetentionPolicy(good_days=30, not_inspected_days=35, bad_days=365)
    cutoff = {"g": now - timedelta(days=30), "n": now - timedelta(days=35)}
    gone = [
        d
        for letter, d in zip(pattern, decisions, strict=True)
        if letter in cutoff and d.created_at < cutoff[letter]
    ]
    stays = [d for d in decisions if d not in gone]
    assert len(gone) == 7 and [d.verdict for d in gone].count(Verdict.NOT_INSPECTED) == 1
    seqs = _seqs(log, gone)
    runs = 1 + sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b != a + 1)

    result = log.prune(policy, now=now)

    assert (result.decisions, result.files) == (len(gone), 2 * (len(gone) - 1))  # "n" has no files
    assert result.cutoffs[Verdict.GOOD] == cutoff["g"] and result.cutoffs[Verdict.BAD] == now - timedelta(
        days=365
    )
    assert all(log.get(d.part_id) is None for d in gone)
    assert [log.get(d.part_id) for d in stays] == stays
    assert not any(f.exists() for d in gone for f in _files_of(log, d))
    assert all(f.exists() for d in stays for f in _files_of(log, d))
    assert result.ranges == runs == rows_in_db(log, "pruned_ranges") and runs > 1

    verified = log.verify()
    assert verified.ok, verified.problem
    assert verified.pruned == len(gone) and verified.head == head == log.chain_head()
    later = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    assert log.verify().ok and log.get(later.part_id) == later
    # Nothing else is due: a second run records nothing.
    assert log.prune(policy, now=now).run_id is None
    assert rows_in_db(log, "retention_runs") == 1
    # Empty day folders went with their files.
    assert all(any(p.iterdir()) for p in media_root.rglob("*") if p.is_dir())


def test_a_disk_budget_removes_the_oldest_good_parts_first(
    db_url: str, open_log: Callable[..., VisualLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, decisions = _line(open_log, db_url, "gbgbgggnbgg")
    sizes = {d.part_id: sum(f.stat().st_size for f in _files_of(log, d)) for d in decisions}
    total = sum(sizes.values())
    goods = [d for d in decisions if d.verdict is Verdict.GOOD]

    three_goods = sum(sizes[d.part_id] for d in goods[:3])
    dry = log.prune(replace(NO_AGE, max_media_bytes=total - three_goods), dry_run=True)
    assert (dry.decisions, dry.media_bytes, dry.run_id) == (3, three_goods, None)
    assert rows_in_db(log) == len(decisions)

    result = log.prune(replace(NO_AGE, max_media_bytes=total - three_goods))
    assert result.decisions == 3 and result.media_bytes == three_goods
    assert [log.get(d.part_id) is None for d in decisions] == [d in goods[:3] for d in decisions]

    # Free space below the minimum: every good part, then not-inspected, then the oldest bad ones go.
    bads = [d for d in decisions if d.verdict is Verdict.BAD]
    wanted = sum(sizes[d.part_id] for d in goods[3:]) + sizes[bads[0].part_id]
    monkeypatch.setattr(
        retention_module.shutil,
        "disk_usage",
        lambda _path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000),
    )
    result = log.prune(replace(NO_AGE, min_free_bytes=1000 + wanted))
    remaining = log.find(limit=None)
    assert [d.part_id for d in remaining] == [d.part_id for d in reversed(bads[1:])]
    assert result.decisions == len(decisions) - 3 - len(remaining)
    assert log.verify().ok


def test_an_interrupted_run_is_finished_by_the_next(
    db_url: str, open_log: Callable[..., VisualLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, decisions = _line(open_log, db_url, "ggbgg")
    real_contiguous = retention_module._contiguous

    class Crash(Exception):
        pass

    def crash(_links: object) -> object:
        raise Crash  # the process dies between deleting the files and deleting the rows

    monkeypatch.setattr(retention_module, "_contiguous", crash)
    with pytest.raises(Crash):
        log.prune(RetentionPolicy(good_days=1), now=T0 + timedelta(days=10))
    assert rows_in_db(log) == 5 and log.verify().ok  # rows all there; their files are gone
    assert not any(f.exists() for d in decisions if d.verdict is Verdict.GOOD for f in _files_of(log, d))

    monkeypatch.setattr(retention_module, "_contiguous", real_contiguous)
    result = log.prune(NO_AGE, now=T0 + timedelta(days=10))  # this policy alone removes nothing
    assert result.decisions == 4 and rows_in_db(log) == 1
    assert log.verify().ok and log.verify().pruned == 4


def test_only_retention_may_delete_and_only_what_it_recorded(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    log, decisions = _line(open_log, db_url, "ggg")
    log.prune(RetentionPolicy(good_days=1), now=decisions[1].created_at + timedelta(days=1, seconds=1))
    assert rows_in_db(log) == 1
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM decisions"))
    assert log.get(decisions[2].part_id) == decisions[2]


def test_prune_command(
    sqlite_url: str,
    open_log: Callable[..., VisualLog],
    media_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, decisions = _line(open_log, sqlite_url, "gbgn")
    log.close()
    args = [
        "prune",
        "--db",
        sqlite_url,
        "--media-root",
        str(media_root),
        "--good-days",
        "0",
        "--not-inspected-days",
        "0",
        "--bad-days",
        "100000",
    ]
    assert main([*args, "--dry-run"]) == 0
    assert "station-1: would remove 3 decisions" in capsys.readouterr().out
    monkeypatch.setenv("INSPECTOR_PASSWORD", "anna-password")
    assert main([*args, "--user", "anna"]) == 2  # retention is an admin's
    assert "anna may not apply retention" in capsys.readouterr().err
    monkeypatch.setenv("INSPECTOR_PASSWORD", ADMIN_PASSWORD)
    assert main([*args, "--user", "admin"]) == 0
    out = capsys.readouterr().out
    assert "station-1: removed 3 decisions" in out and "4 files, 2 pruned ranges recorded" in out
    assert main(["verify-log", "--db", sqlite_url]) == 0
    assert "station-1: ok, 1 records, 3 removed by retention" in capsys.readouterr().out
