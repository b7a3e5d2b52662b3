"""History review over the whole log: filters, sorts and keyset pages equal a direct SQL query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from storage_helpers import MODEL_HASH, FakeClock, login, make_inspection, make_part

from core.common.fileio import sha256_bytes
from core.common.types import Verdict
from core.storage import VisualLog
from core.storage.auth import Actor
from core.storage.history import HistoryCursor, HistoryQuery, HistorySort, ReviewState

T0 = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
OTHER_MODEL = sha256_bytes(b"another model")


def _record_or_review(log: VisualLog, part_id: str, verdict: Verdict, user: Actor) -> None:
    log.review(part_id, verdict=verdict, actor=user, comment="checked by hand")


@pytest.fixture
def two_stations(db_url: str, open_log: Callable[..., VisualLog]) -> VisualLog:
    """Two stations sharing one log, 36 parts each, a few not inspected, some reviewed.

    The clock ticks one minute per record; both stations use clocks that make their times
    interleave, and several scores repeat so that ties in the sort key are exercised.
    """
    rng = np.random.default_rng(11)
    logs = [
        open_log(db_url, station="line-a", clock=FakeClock(T0, timedelta(minutes=2))),
        open_log(db_url, station="line-b", clock=FakeClock(T0 + timedelta(minutes=1), timedelta(minutes=2))),
    ]
    # Logged in on a log of its own, so that the stations' clocks tick only for their records.
    anna = login(open_log(db_url), "anna")
    ids: list[str] = []
    for i in range(36):
        for n, log in enumerate(logs):
            if i % 9 == 4:
                decision = log.record(make_part(image=False, error="unreadable"), None, model_hash=None)
            else:
                score = round(float(rng.choice([0.1, 0.3, 0.5, 0.7, 0.9, rng.random()])), 3)
                decision = log.record(
                    make_part(),
                    make_inspection(score=score),
                    model_hash=MODEL_HASH if (i + n) % 3 else OTHER_MODEL,
                )
            ids.append(decision.part_id)
    # Reviews: confirmations, overrides, and a part first overridden then confirmed.
    for k, part_id in enumerate(ids[::5]):
        d = logs[0].get(part_id)
        assert d is not None
        if d.verdict is Verdict.NOT_INSPECTED:
            _record_or_review(logs[0], part_id, Verdict.GOOD, anna)
        elif k % 2:
            _record_or_review(logs[0], part_id, d.verdict, anna)
        else:
            other = Verdict.GOOD if d.verdict is Verdict.BAD else Verdict.BAD
            _record_or_review(logs[0], part_id, other, anna)
            if k % 4 == 0:
                _record_or_review(logs[0], part_id, d.verdict, anna)
    return logs[0]


def _sql(log: VisualLog, where: str, order: str, **params: Any) -> list[str]:
    """The part ids a hand-written SQL query gives."""
    newest = "(SELECT r.outcome FROM reviews r WHERE r.part_id = d.part_id ORDER BY r.seq DESC LIMIT 1)"
    statement = (
        "SELECT d.part_id FROM decisions d JOIN stations s ON s.id = d.station_id"
        " LEFT JOIN model_versions m ON m.id = d.model_version_id"
        f" WHERE {where.replace('NEWEST_OUTCOME', newest)} ORDER BY {order}"
    )
    with log.engine.connect() as connection:
        return [row[0] for row in connection.execute(text(statement), params)]


def _walk(log: VisualLog, query: HistoryQuery, limit: int) -> list[str]:
    """Every row, page after page, by keyset."""
    seen: list[str] = []
    after: HistoryCursor | None = None
    while True:
        page = log.history(query, after=after, limit=limit)
        seen.extend(r.decision.part_id for r in page.rows)
        assert page.has_previous == (after is not None)
        if not page.has_next:
            return seen
        assert len(page.rows) == limit
        after = page.last


def _walk_back(log: VisualLog, query: HistoryQuery, limit: int) -> list[str]:
    """Every row, from the last page back to the first."""
    page = log.history(query, from_end=True, limit=limit)
    pages = [[r.decision.part_id for r in page.rows]]
    assert not page.has_next
    while page.has_previous:
        page = log.history(query, before=page.first, limit=limit)
        pages.append([r.decision.part_id for r in page.rows])
    return [part for chunk in reversed(pages) for part in chunk]


CASES = [
    (HistoryQuery(), "1=1", "d.created_at DESC, d.part_id DESC", {}),
    (HistoryQuery(sort=HistorySort.OLDEST), "1=1", "d.created_at, d.part_id", {}),
    (
        HistoryQuery(verdicts=(Verdict.BAD,), stations=("line-b",)),
        "d.verdict = 'bad' AND s.name = 'line-b'",
        "d.created_at DESC, d.part_id DESC",
        {},
    ),
    (
        HistoryQuery(verdicts=(Verdict.NOT_INSPECTED,)),
        "d.verdict = 'not_inspected'",
        "d.created_at DESC, d.part_id DESC",
        {},
    ),
    (
        HistoryQuery(score_min=0.3, score_max=0.7, sort=HistorySort.SCORE_HIGH),
        "d.score >= 0.3 AND d.score < 0.7",
        "d.score DESC, d.part_id DESC",
        {},
    ),
    (
        HistoryQuery(sort=HistorySort.SCORE_LOW, model_hash=OTHER_MODEL),
        "d.score IS NOT NULL AND m.hash = :model",
        "d.score, d.part_id",
        {"model": OTHER_MODEL},
    ),
    (
        HistoryQuery(
            since=T0 + timedelta(minutes=20), until=T0 + timedelta(minutes=90), stations=("line-a",)
        ),
        "d.created_at >= :since AND d.created_at < :until AND s.name = 'line-a'",
        "d.created_at DESC, d.part_id DESC",
        {"since": T0 + timedelta(minutes=20), "until": T0 + timedelta(minutes=90)},
    ),
    (
        HistoryQuery(review=ReviewState.UNREVIEWED, verdicts=(Verdict.GOOD, Verdict.BAD)),
        "NOT EXISTS (SELECT 1 FROM reviews r WHERE r.part_id = d.part_id) AND d.verdict <> 'not_inspected'",
        "d.created_at DESC, d.part_id DESC",
        {},
    ),
    (
        HistoryQuery(review=ReviewState.REVIEWED, sort=HistorySort.OLDEST),
        "EXISTS (SELECT 1 FROM reviews r WHERE r.part_id = d.part_id)",
        "d.created_at, d.part_id",
        {},
    ),
    (
        HistoryQuery(review=ReviewState.OVERRIDDEN),
        "NEWEST_OUTCOME = 'overridden'",
        "d.created_at DESC, d.part_id DESC",
        {},
    ),
    (
        HistoryQuery(review=ReviewState.CONFIRMED, sort=HistorySort.SCORE_HIGH),
        "NEWEST_OUTCOME = 'confirmed' AND d.score IS NOT NULL",
        "d.score DESC, d.part_id DESC",
        {},
    ),
]


def test_history_pages_equal_the_sql_query(two_stations: VisualLog) -> None:
    """Every case on one generated log (making it is most of the cost), each named when it fails."""
    log = two_stations
    for number, (query, where, order, params) in enumerate(CASES):
        _check_case(log, query, where, order, params, f"case {number}: {where}")


def _check_case(
    log: VisualLog, query: HistoryQuery, where: str, order: str, params: dict[str, Any], case: str
) -> None:
    if log.engine.dialect.name == "sqlite":  # times are stored as UTC text there
        params = {
            k: v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
            for k, v in params.items()
        }
    expected = _sql(log, where, order, **params)
    assert expected, f"{case}: the generated log must hold rows for every case"
    assert log.history_count(query) == len(expected), case
    for limit in (7, 50):
        assert _walk(log, query, limit) == expected, case
        assert _walk_back(log, query, limit) == expected, case
    first = log.history(query, limit=5)
    assert [r.decision.part_id for r in first.rows] == expected[:5], case
    if len(expected) <= 5:
        return
    # The page before the second page is the first page again.
    second = log.history(query, after=first.last, limit=5)
    back = log.history(query, before=second.first, limit=5)
    assert [r.decision.part_id for r in back.rows] == expected[:5], case
    assert not back.has_previous and back.has_next, case


def test_rows_carry_the_newest_review_and_the_decision_unchanged(two_stations: VisualLog) -> None:
    log = two_stations
    page = log.history(HistoryQuery(review=ReviewState.REVIEWED), limit=100)
    assert page.rows
    for row in page.rows:
        reviews = log.reviews_of(row.decision.part_id)
        assert row.reviews == len(reviews)
        assert row.review_verdict is reviews[-1].verdict
        assert row.review_outcome is reviews[-1].outcome
        assert row.final_verdict is reviews[-1].verdict
        assert row.decision == log.get(row.decision.part_id)  # the decision itself as recorded
        assert row.model_name is None or isinstance(row.model_name, str)
    twice = [r for r in page.rows if r.reviews == 2]
    assert twice and all(r.review_outcome.value == "confirmed" for r in twice)  # type: ignore[union-attr]


def test_empty_log_and_bad_queries(log: VisualLog) -> None:
    page = log.history(HistoryQuery())
    assert page.rows == () and page.first is None and not page.has_next and not page.has_previous
    assert log.history_count(HistoryQuery()) == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        HistoryQuery(since=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="upside down"):
        HistoryQuery(score_min=0.8, score_max=0.2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        HistoryQuery(score_min=1.5)
    with pytest.raises(ValueError, match="at least one"):
        HistoryQuery(verdicts=())
    with pytest.raises(ValueError, match="one of them"):
        log.history(HistoryQuery(), from_end=True, after=HistoryCursor(key=T0, part_id="X"))
    with pytest.raises(ValueError, match="1 to 1000"):
        log.history(HistoryQuery(), limit=0)


def test_history_pages_run_on_indexes(log_sqlite: VisualLog) -> None:
    """On SQLite every sort order reads an index in order: no temporary sort of the whole log."""
    from sqlalchemy.dialects import sqlite

    from core.storage.history import _where
    from core.storage.queries import _DECISIONS
    from core.storage.schema import DecisionRow

    for query, order in (
        (HistoryQuery(), (DecisionRow.created_at.desc(), DecisionRow.part_id.desc())),
        (HistoryQuery(verdicts=(Verdict.BAD,)), (DecisionRow.created_at.desc(), DecisionRow.part_id.desc())),
        (HistoryQuery(sort=HistorySort.SCORE_HIGH), (DecisionRow.score.desc(), DecisionRow.part_id.desc())),
    ):
        statement = _where(_DECISIONS, query).order_by(*order).limit(50)
        compiled = statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
        with log_sqlite.engine.connect() as connection:
            plan = " | ".join(
                str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            )
        assert "TEMP B-TREE" not in plan, plan
