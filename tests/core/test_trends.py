"""Trends of a shift (``core.reports.trends`` over ``VisualLog.trend``) against direct SQL.

A real SQLite visual log (and PostgreSQL when ``INSPECTOR_TEST_PG_URL`` is set) gets parts with
known times, scores, verdicts and latencies; every figure of the trend is then asked of the
database again, interval by interval and bin by bin, with plain SQL on the decisions table.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.common.types import Inspection, Part, Verdict
from core.reports.shifts import ShiftPlan
from core.reports.trends import shift_trends
from core.storage import VisualLog

PLAN = ShiftPlan.parse("06:00=early,14:00=late,22:00=night", "UTC")
SHIFT_START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
NOW = SHIFT_START + timedelta(hours=1, minutes=7, seconds=30)
BUCKET_S = 600
PG_URL = os.environ.get("INSPECTOR_TEST_PG_URL")


class ListClock:
    """Returns the given times in order (one per recorded part), then the last one forever."""

    def __init__(self, times: list[datetime]) -> None:
        self.times = list(times)

    def __call__(self) -> datetime:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def _known_parts() -> list[tuple[datetime, float | None, float]]:
    """(time, score or None for not inspected, latency ms), with a fixed random draw.

    The night shift before has parts too (they must not count), as have the edges: a part at
    the shift's start, one a microsecond before an interval's end, one exactly at an interval's
    start, scores of exactly 0 and 1.
    """
    rng = np.random.default_rng(16)
    parts: list[tuple[datetime, float | None, float]] = []
    for _ in range(12):  # night shift, the day before
        parts.append((SHIFT_START - timedelta(seconds=float(rng.uniform(1, 3000))), 0.9, 20.0))
    parts.append((SHIFT_START, 0.0, 11.0))
    parts.append((SHIFT_START + timedelta(seconds=BUCKET_S) - timedelta(microseconds=1), 1.0, 13.0))
    parts.append((SHIFT_START + timedelta(seconds=2 * BUCKET_S), 0.61, 40.0))
    for _ in range(160):
        offset = float(rng.uniform(0, (NOW - SHIFT_START).total_seconds() - 1))
        roll = rng.uniform()
        score: float | None = None if roll < 0.05 else float(rng.beta(0.6, 1.8))
        parts.append((SHIFT_START + timedelta(seconds=offset), score, float(rng.uniform(5, 80))))
    parts.append((NOW + timedelta(seconds=5), 0.2, 10.0))  # after now: not yet part of the trend
    return sorted(parts)


def _fill(url: str, media: Path) -> None:
    parts = _known_parts()
    heatmap = np.zeros((8, 8), dtype=np.uint8)
    image = np.full((8, 8), 128, dtype=np.uint8)
    with VisualLog(url, media_root=media, station="line-3", clock=ListClock([t for t, _, _ in parts])) as log:
        for index, (at, score, latency) in enumerate(parts):
            part = Part(source_ref=f"part-{index}", arrived_at=at, image=image)
            if score is None:
                log.record(part, None, model_hash="a" * 64, reason="decode failed")
            else:
                inspection = Inspection(score=score, threshold=0.5, heatmap=heatmap, latency_ms=latency)
                log.record(part, inspection, model_hash="a" * 64)


def _sql_time(connection, moment: datetime):  # type: ignore[no-untyped-def]
    # SQLite stores UTC text of fixed width; PostgreSQL compares timestamptz.
    if connection.dialect.name == "sqlite":
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


@pytest.fixture(scope="module")
def filled_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite log holding the known parts, filled once (its folder: log.sqlite and media/)."""
    folder = tmp_path_factory.mktemp("filled")
    _fill(f"sqlite:///{folder / 'log.sqlite'}", folder / "media")
    return folder


def _copy_of(filled: Path, tmp_path: Path) -> str:
    """A test's own copy of the filled log (the log was closed cleanly: one file)."""
    shutil.copyfile(filled / "log.sqlite", tmp_path / "log.sqlite")
    shutil.copytree(filled / "media", tmp_path / "media")
    return f"sqlite:///{tmp_path / 'log.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def filled_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real visual log holding the known parts, on SQLite and (when given) PostgreSQL."""
    if request.param == "sqlite":
        yield _copy_of(request.getfixturevalue("filled_sqlite"), tmp_path)
        return
    if not PG_URL:
        pytest.skip("set INSPECTOR_TEST_PG_URL to run the trend tests on PostgreSQL")
    schema = f"test_trends_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        rendered = url.render_as_string(hide_password=False)
        _fill(rendered, tmp_path / "media")
        yield rendered
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_shift_trends_equal_direct_sql(filled_url: str, tmp_path: Path) -> None:
    with VisualLog(filled_url, media_root=tmp_path / "media", station="line-3") as log:
        trends = shift_trends(log, now=NOW, plan=PLAN, bucket_s=BUCKET_S, score_bins=20)
        engine = log.engine
        assert trends.shift.start == SHIFT_START and trends.shift.name == "early"
        buckets = trends.trend.buckets
        assert len(buckets) == 7  # 1 h 7.5 min in 10-minute intervals
        assert buckets[-1].duration_s == 450.0  # the last one runs to now
        with engine.connect() as connection:
            for bucket in buckets:
                rows = connection.execute(
                    text(
                        "SELECT verdict, count(*), avg(latency_ms), max(latency_ms) FROM decisions "
                        "WHERE created_at >= :a AND created_at < :b GROUP BY verdict"
                    ),
                    {
                        "a": _sql_time(connection, bucket.start),
                        "b": _sql_time(connection, bucket.start + timedelta(seconds=bucket.duration_s)),
                    },
                ).all()
                by_verdict = {v: (n, mean, top) for v, n, mean, top in rows}
                for verdict in Verdict:
                    assert getattr(bucket, verdict.value) == by_verdict.get(verdict.value, (0,))[0]
                latencies = connection.execute(
                    text(
                        "SELECT avg(latency_ms), max(latency_ms) FROM decisions "
                        "WHERE created_at >= :a AND created_at < :b AND latency_ms IS NOT NULL"
                    ),
                    {
                        "a": _sql_time(connection, bucket.start),
                        "b": _sql_time(connection, bucket.start + timedelta(seconds=bucket.duration_s)),
                    },
                ).one()
                if latencies[0] is None:
                    assert bucket.latency_mean_ms is None
                else:
                    assert bucket.latency_mean_ms == pytest.approx(float(latencies[0]))
                    assert bucket.latency_max_ms == pytest.approx(float(latencies[1]))
                expected_rate = bucket.bad / (bucket.good + bucket.bad) if bucket.good + bucket.bad else None
                assert bucket.bad_rate == expected_rate
                assert bucket.parts_per_min == pytest.approx(60 * bucket.total / bucket.duration_s)
            edges = trends.trend.scores.edges
            for index in range(len(edges) - 1):
                upper = "<=" if index == len(edges) - 2 else "<"
                for verdict, counted in (
                    ("good", trends.trend.scores.good),
                    ("bad", trends.trend.scores.bad),
                ):
                    expected = connection.execute(
                        text(
                            "SELECT count(*) FROM decisions WHERE verdict = :v AND score >= :lo "
                            f"AND score {upper} :hi AND created_at >= :a AND created_at < :b"
                        ),
                        {
                            "v": verdict,
                            "lo": edges[index],
                            "hi": edges[index + 1],
                            "a": _sql_time(connection, SHIFT_START),
                            "b": _sql_time(connection, NOW),
                        },
                    ).scalar_one()
                    assert counted[index] == expected, (verdict, index)
            in_shift = connection.execute(
                text("SELECT count(*) FROM decisions WHERE created_at >= :a AND created_at < :b"),
                {"a": _sql_time(connection, SHIFT_START), "b": _sql_time(connection, NOW)},
            ).scalar_one()
    # The edges landed where they belong, and the shift's parts are all there, no more.
    assert trends.trend.total == in_shift == 163
    assert buckets[0].good >= 1 and buckets[0].bad >= 1  # 0.0 at the start, 1.0 just before 06:10
    assert trends.trend.scores.good[0] >= 1 and trends.trend.scores.bad[-1] >= 1
    assert trends.threshold == 0.5
    assert trends.bad_rate == pytest.approx(
        sum(b.bad for b in buckets) / sum(b.good + b.bad for b in buckets)
    )


def test_an_empty_shift_has_empty_intervals_and_the_threshold_from_before(
    tmp_path: Path, filled_sqlite: Path
) -> None:
    url = _copy_of(filled_sqlite, tmp_path)
    later = NOW + timedelta(hours=8)  # the late shift: nothing recorded in it
    with VisualLog(url, media_root=tmp_path / "media", station="line-3") as log:
        trends = shift_trends(log, now=later, plan=PLAN, bucket_s=BUCKET_S)
    assert trends.shift.name == "late"
    assert trends.trend.total == 0 and trends.bad_rate is None
    assert all(b.bad_rate is None and b.latency_mean_ms is None for b in trends.trend.buckets)
    assert trends.threshold == 0.5  # the newest inspected part's, from the shift before


def test_a_station_that_recorded_nothing(tmp_path: Path) -> None:
    with VisualLog(f"sqlite:///{tmp_path / 'log.sqlite'}", media_root=tmp_path / "m") as log:
        trends = shift_trends(log, now=NOW, plan=PLAN)
    assert trends.trend.total == 0 and trends.threshold is None
    assert sum(trends.trend.scores.good) == 0


@pytest.mark.parametrize(
    ("since", "until", "bucket_s", "message"),
    [
        (NOW, NOW - timedelta(seconds=1), 60, "empty"),
        (SHIFT_START, NOW, 0, "at least 1"),
        (SHIFT_START, SHIFT_START + timedelta(days=30), 60, "at most"),
        (SHIFT_START.replace(tzinfo=None), NOW, 60, "timezone-aware"),
    ],
)
def test_bad_spans_are_refused(tmp_path: Path, since, until, bucket_s, message) -> None:  # type: ignore[no-untyped-def]
    with (
        VisualLog(f"sqlite:///{tmp_path / 'log.sqlite'}", media_root=tmp_path / "m") as log,
        pytest.raises(ValueError, match=message),
    ):
        log.trend(since, until, bucket_s=bucket_s)


def test_the_follower_reads_ended_intervals_once_and_equals_shift_trends(tmp_path: Path) -> None:
    from core.reports.trends import ShiftTrendsFollower

    current: list[datetime] = [SHIFT_START]

    def _clock() -> datetime:
        return current[0]

    heatmap = np.zeros((8, 8), dtype=np.uint8)
    image = np.full((8, 8), 128, dtype=np.uint8)
    follower = ShiftTrendsFollower(plan=PLAN, bucket_s=300, score_bins=10)
    rng = np.random.default_rng(3)
    spans: list[tuple[datetime, datetime]] = []
    previous_shift = None
    reused = 0
    with VisualLog(
        f"sqlite:///{tmp_path / 'log.sqlite'}", media_root=tmp_path / "m", station="s", clock=_clock
    ) as log:
        original = log.trend

        def _recording_trend(since, until, **kwargs):  # type: ignore[no-untyped-def]
            spans.append((since, until))
            return original(since, until, **kwargs)

        log.trend = _recording_trend  # type: ignore[method-assign]
        at = SHIFT_START + timedelta(hours=7, minutes=40)  # across the end of the early shift
        for step in range(60):
            at += timedelta(seconds=float(rng.uniform(5, 70)))
            current[0] = at
            score = float(rng.uniform())
            log.record(
                Part(source_ref=f"p{step}", arrived_at=at, image=image),
                Inspection(score=score, threshold=0.4, heatmap=heatmap, latency_ms=float(rng.uniform(5, 50))),
                model_hash="a" * 64,
            )
            if step % 4 == 3:
                now = at + timedelta(seconds=1)
                spans.clear()
                followed = follower.read(log, now=now)
                read_spans = list(spans)
                log.trend = original  # type: ignore[method-assign]
                assert followed == shift_trends(log, now=now, plan=PLAN, bucket_s=300, score_bins=10)
                log.trend = _recording_trend  # type: ignore[method-assign]
                # Never the whole shift again once intervals have ended: from the last boundary on.
                latest_start = max(since for since, _ in read_spans)
                assert (now - latest_start).total_seconds() <= 300 + 1
                assert all(since >= followed.shift.start for since, _ in read_spans)
                if followed.shift == previous_shift and now - followed.shift.start > timedelta(seconds=600):
                    # The ended intervals were read before: nothing from the shift's start again.
                    assert all(since > followed.shift.start for since, _ in read_spans), read_spans
                    reused += 1
                previous_shift = followed.shift
    assert reused >= 3  # the shift change was crossed and the late shift reused its intervals too
