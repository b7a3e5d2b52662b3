"""The queries the GUI needs: latest, time range, verdict, score band, counts per hour; all on indexes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from storage_helpers import MODEL_HASH, FakeClock, login, make_inspection, make_part

from core.common.types import Decision, Verdict
from core.storage import Entry, HourCount, VisualLog
from core.storage.retention import RetentionPolicy

T0 = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
SCORES = [0.05, 0.95, 0.45, None, 0.55, 0.5, 0.2, 0.8, None, 0.49, 0.7, 0.1]  # one every 20 minutes


@pytest.fixture
def filled(db_url: str, open_log: Callable[..., VisualLog]) -> tuple[VisualLog, list[Decision]]:
    log = open_log(db_url, clock=FakeClock(T0, timedelta(minutes=20)))
    log.record_threshold_change(None, 0.5, actor=log.access.system_actor(), reason="start-up")  # first tick
    decisions = [
        log.record(make_part(), make_inspection(score=s), model_hash=MODEL_HASH)
        if s is not None
        else log.record(make_part(image=False, error="no image"), None, model_hash=None)
        for s in SCORES
    ]
    return log, decisions


def test_filters_combine(filled: tuple[VisualLog, list[Decision]]) -> None:
    log, decisions = filled
    newest_first = decisions[::-1]
    assert log.latest(3) == newest_first[:3]
    assert log.find(limit=None, newest_first=False) == decisions

    since, until = decisions[2].created_at, decisions[7].created_at
    assert log.find(since=since, until=until) == newest_first[5:10]
    assert log.find(verdicts=[Verdict.NOT_INSPECTED]) == [decisions[8], decisions[3]]
    assert log.find(verdicts=[Verdict.BAD], since=since, limit=2) == [decisions[10], decisions[7]]
    # A score band [0.45, 0.55): the lower edge is in, the upper edge out.
    band = log.find(score_min=0.45, score_max=0.55, newest_first=False)
    assert [d.score for d in band] == [0.45, 0.5, 0.49]
    assert [d.score for d in log.find(score_min=0.45, score_max=0.55, limit=2)] == [0.49, 0.5]
    assert [d.score for d in log.find(score_min=0.9, limit=5)] == [0.95]
    assert log.find(limit=0) == []

    assert log.counts(since=since, until=until) == {Verdict.GOOD: 2, Verdict.BAD: 2, Verdict.NOT_INSPECTED: 1}
    assert log.count() == 12 and log.count(Verdict.BAD) == 5


def test_counts_per_hour(filled: tuple[VisualLog, list[Decision]]) -> None:
    log, decisions = filled
    hours = log.counts_per_hour(T0, T0 + timedelta(days=1))
    assert [h.hour for h in hours] == [T0 + timedelta(hours=i) for i in range(5)]
    assert hours[0] == HourCount(hour=T0, good=1, bad=1, not_inspected=0)  # 06:20, 06:40
    assert [h.total for h in hours] == [2, 3, 3, 3, 1]
    assert sum(h.bad for h in hours) == 5 and sum(h.not_inspected for h in hours) == 2
    assert log.counts_per_hour(T0 + timedelta(hours=2), T0 + timedelta(hours=3)) == [hours[2]]


def test_records_carry_the_newest_review(filled: tuple[VisualLog, list[Decision]]) -> None:
    log, decisions = filled
    anna, ben = login(log, "anna"), login(log, "ben")
    log.review(decisions[1].part_id, verdict=Verdict.GOOD, actor=anna, comment="first look")
    log.review(decisions[1].part_id, verdict=Verdict.BAD, actor=ben, comment="second look")
    records = list(log.records(decisions[0].created_at, decisions[3].created_at))
    assert [r.decision for r in records] == decisions[:3]
    assert records[1].review is not None and records[1].review.comment == "second look"
    assert records[0].review is None and records[0].seq == 2


@contextmanager
def _statements(log: VisualLog) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "decisions" in statement:
            seen.append((statement, parameters))

    event.listen(log.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(log.engine, "before_cursor_execute", capture)


def _spread(log: VisualLog, number: int, *, batch: int = 250) -> None:
    """``number`` decisions of every verdict, with scores all over 0..1 (heatmap files only)."""
    scores = iter(np.random.default_rng(3).random(number))
    for start in range(0, number, batch):
        entries = []
        for index in range(start, min(start + batch, number)):
            if index % 3 == 0:
                entries.append(Entry(part=make_part(image=False, error="no image"), inspection=None))
            else:
                entries.append(
                    Entry(part=make_part(image=False), inspection=make_inspection(score=next(scores)))
                )
        log.record_many(entries, model_hash=MODEL_HASH)


def _not_inspected(log: VisualLog, number: int, *, batch: int = 500) -> None:
    """``number`` decisions without media files: a thousand rows in a moment."""
    for start in range(0, number, batch):
        entries = [
            Entry(part=make_part(image=False, error="no image"), inspection=None)
            for _ in range(min(batch, number - start))
        ]
        log.record_many(entries, model_hash=None)


def _statistics(url: str, table: str = "decisions") -> dict[str, int]:
    """The planner statistics of ``table``'s indexes, read from the file: index -> rows recorded."""
    path = make_url(url).database
    assert path is not None
    connection = sqlite3.connect(path)
    try:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone() is None:
            return {}
        rows = connection.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = ?", (table,)).fetchall()
    finally:
        connection.close()
    return {index: int(stat.split()[0]) for index, stat in rows}


DECISION_INDEXES = {
    "ix_decisions_station_time",
    "ix_decisions_station_verdict_time",
    "ix_decisions_station_score",
    "ix_decisions_content_hash",
}


@pytest.mark.parametrize("rows", [1, 1200], ids=["without statistics", "with statistics"])
def test_gui_queries_use_indexes_on_sqlite(
    sqlite_url: str, open_log: Callable[..., VisualLog], rows: int
) -> None:
    log = open_log(sqlite_url)
    _spread(log, rows)
    if rows > 1:  # the planner's statistics must not talk it into scanning the table
        open_log(sqlite_url).close()
        assert set(_statistics(sqlite_url)) >= DECISION_INDEXES
    else:
        assert _statistics(sqlite_url) == {}
    start = datetime(2025, 1, 1, tzinfo=UTC)
    calls = {
        "latest": lambda: log.latest(50),
        "time range": lambda: log.find(since=start, until=start + timedelta(hours=8)),
        "verdict": lambda: log.find(verdicts=[Verdict.BAD]),
        "score band": lambda: log.find(score_min=0.4, score_max=0.6),
        "score band, page filled among the newest": lambda: log.find(score_min=0.0, limit=1),
        "counts per hour": lambda: log.counts_per_hour(start, start + timedelta(days=1)),
        "counts": lambda: log.counts(),
        "content hash": lambda: log.find_by_content_hash("0" * 64),
    }
    for name, call in calls.items():
        with _statements(log) as seen:
            call()
        assert seen, name
        with log.engine.connect() as connection:
            for statement, parameters in seen:
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                details = [row[-1] for row in plan]
                scans = [d for d in details if d.startswith("SCAN decisions") and "INDEX" not in d]
                assert not scans, f"{name}: full scan of decisions: {details}"


def test_sqlite_statistics_are_refreshed(sqlite_url: str, open_log: Callable[..., VisualLog]) -> None:
    # Statistics let SQLite tell a narrow time range from a wide score band.
    log = open_log(sqlite_url)
    assert _statistics(sqlite_url) == {}  # a new log: an empty table's figures would mislead the planner
    _not_inspected(log, 1200)
    assert _statistics(sqlite_url) == {}  # writing does not analyze
    log.close()
    analyzed = _statistics(sqlite_url)
    assert set(analyzed) >= DECISION_INDEXES and set(analyzed.values()) == {1200}

    log = open_log(sqlite_url)
    _not_inspected(log, 300)
    log.close()
    assert set(_statistics(sqlite_url).values()) == {1200}  # 1500 rows: close enough, not analyzed again

    log = open_log(sqlite_url)
    _not_inspected(log, 1000)
    log.close()
    assert set(_statistics(sqlite_url).values()) == {2500}  # more than twice as many: analyzed again


def test_statistics_of_a_log_never_closed_are_refreshed_when_it_opens(
    sqlite_url: str, open_log: Callable[..., VisualLog]
) -> None:
    station = open_log(sqlite_url)
    _not_inspected(station, 1100)  # then the power goes: the station never closes its log
    assert _statistics(sqlite_url) == {}
    open_log(sqlite_url)
    assert set(_statistics(sqlite_url).values()) == {1100}


def test_statistics_are_refreshed_after_retention_removed_decisions(
    sqlite_url: str, open_log: Callable[..., VisualLog]
) -> None:
    clock = FakeClock(T0)
    log = open_log(sqlite_url, clock=clock)
    _not_inspected(log, 1500)
    clock.now = T0 + timedelta(days=200)
    _not_inspected(log, 100)
    log.close()
    assert set(_statistics(sqlite_url).values()) == {1600}

    log = open_log(sqlite_url, clock=clock)
    assert log.prune(RetentionPolicy(), dry_run=True).decisions == 1500
    assert set(_statistics(sqlite_url).values()) == {1600}  # a dry run changes nothing
    assert log.prune(RetentionPolicy()).decisions == 1500  # not inspected: gone after 90 days
    assert set(_statistics(sqlite_url).values()) == {100}  # refreshed before the log closes


def test_a_read_only_log_opens_and_closes_without_refreshing_statistics(
    sqlite_url: str, open_log: Callable[..., VisualLog], caplog: pytest.LogCaptureFixture
) -> None:
    station = open_log(sqlite_url)
    _not_inspected(station, 1100)  # stale: no statistics yet
    path = make_url(sqlite_url).database
    reader = open_log(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert reader.count() == 1100
    reader.close()
    assert _statistics(sqlite_url) == {}  # statistics only speed queries up: no reason to fail
    assert any("planner statistics" in r.message and "readonly" in r.message for r in caplog.records)
