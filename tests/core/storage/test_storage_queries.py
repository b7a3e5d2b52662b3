"""The queries the GUI needs: latest, time range, verdict, score band, counts per hour; all on indexes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from storage_helpers import MODEL_HASH, FakeClock, make_inspection, make_part

from core.common.types import Decision, Verdict
from core.storage import HourCount, VisualLog

T0 = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
SCORES = [0.05, 0.95, 0.45, None, 0.55, 0.5, 0.2, 0.8, None, 0.49, 0.7, 0.1]  # one every 20 minutes


@pytest.fixture
def filled(db_url: str, open_log: Callable[..., VisualLog]) -> tuple[VisualLog, list[Decision]]:
    log = open_log(db_url, clock=FakeClock(T0, timedelta(minutes=20)))
    log.record_threshold_change(None, 0.5, user="system", reason="start-up")  # takes the first tick
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
    log.add_user("anna", role="supervisor")
    log.review(decisions[1].part_id, verdict=Verdict.GOOD, user="anna", comment="first look")
    log.review(decisions[1].part_id, verdict=Verdict.BAD, user="system", comment="second look")
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


def test_gui_queries_use_indexes_on_sqlite(log_sqlite: VisualLog) -> None:
    log = log_sqlite
    log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)  # creates the station
    start = datetime(2025, 1, 1, tzinfo=UTC)
    calls = {
        "latest": lambda: log.latest(50),
        "time range": lambda: log.find(since=start, until=start + timedelta(hours=8)),
        "verdict": lambda: log.find(verdicts=[Verdict.BAD]),
        "score band": lambda: log.find(score_min=0.4, score_max=0.6),
        "score band, page filled among the newest": lambda: log.find(score_min=0.0, limit=1),
        "counts per hour": lambda: log.counts_per_hour(start, start + timedelta(days=1)),
        "counts": lambda: log.counts(),
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


def test_sqlite_statistics_are_refreshed(log_sqlite: VisualLog) -> None:
    # ANALYZE statistics let SQLite pick the better index of a score band vs. a time range.
    with log_sqlite.engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
