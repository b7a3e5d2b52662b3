"""The trend page's query on a busy shift: time of ``shift_trends`` by the number of parts.

An eight-hour shift at 10 parts/s is 288,000 decisions. The decisions are bulk-loaded into a real
visual log (migrated by ``VisualLog``; rows inserted with SQL, no media files, placeholder chain
hashes: the trend reads neither), then two calls are timed, median of five (page cache warm):
``shift_trends`` over the whole shift in ten-minute intervals (the page's first refresh), and
the page's later refreshes (``ShiftTrendsFollower``: the ended intervals kept, the open one read).
Add ``--pg-url`` for PostgreSQL as well.

    .venv/bin/python benchmarks/trends_bench.py --parts 10000 100000 288000
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from core.reports.shifts import ShiftPlan
from core.reports.trends import ShiftTrendsFollower, shift_trends
from core.storage import VisualLog
from core.storage.schema import DecisionRow, ModelVersion, Station

PLAN = ShiftPlan.parse("06:00=early,14:00=late,22:00=night", "UTC")
SHIFT_START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
NOW = SHIFT_START + timedelta(hours=8) - timedelta(seconds=1)


def load(url: str, media: Path, parts: int) -> None:
    VisualLog(url, media_root=media, station="line-1").close()  # migrate
    engine = create_engine(url)
    rnd = random.Random(1)
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA synchronous=OFF")  # a bulk load, not the station
        station_id = connection.execute(insert(Station.__table__).values(name="line-1")).inserted_primary_key[
            0
        ]
        model_id = connection.execute(
            insert(ModelVersion.__table__).values(hash="m" * 64, name="m", created_at=SHIFT_START)
        ).inserted_primary_key[0]
    step = (NOW - SHIFT_START) / parts
    batch: list[dict[str, Any]] = []
    for n in range(parts):
        bad = rnd.random() < 0.06
        score = rnd.betavariate(6, 2) if bad else rnd.betavariate(1.1, 9)
        inspected = rnd.random() > 0.003
        batch.append(
            {
                "part_id": uuid.uuid4().hex[:26].upper(), "station_id": station_id,
                "created_at": SHIFT_START + step * n, "source_ref": f"p{n}", "content_hash": None,
                "verdict": ("bad" if score >= 0.5 else "good") if inspected else "not_inspected",
                "score": score if inspected else None, "threshold": 0.5 if inspected else None,
                "reason": None if inspected else "truncated", "latency_ms": rnd.gauss(24, 3),
                "model_version_id": model_id, "image_path": None, "heatmap_path": None, "seq": n + 1,
                "row_hash": "0" * 64, "media_bytes": 0, "hash_version": 2,
            }
        )  # fmt: skip
        if len(batch) == 20_000:
            with engine.begin() as connection:
                connection.execute(insert(DecisionRow.__table__), batch)
            batch = []
    if batch:
        with engine.begin() as connection:
            connection.execute(insert(DecisionRow.__table__), batch)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE decisions"))
    engine.dispose()


def time_trends(url: str, media: Path, rounds: int = 5) -> tuple[float, float, int]:
    """Median seconds of the whole-shift query and of the page's steady refresh, and the parts read."""
    whole = []
    steady = []
    total = 0
    with VisualLog(url, media_root=media, station="line-1") as log:
        shift_trends(log, now=NOW, plan=PLAN)  # warm
        follower = ShiftTrendsFollower(plan=PLAN, bucket_s=600)
        follower.read(log, NOW - timedelta(seconds=30))  # the page's first refresh: the whole shift
        for _ in range(rounds):
            started = time.perf_counter()
            trends = shift_trends(log, now=NOW, plan=PLAN, bucket_s=600)
            whole.append(time.perf_counter() - started)
            started = time.perf_counter()
            followed = follower.read(log, NOW)  # later refreshes: the open interval only
            steady.append(time.perf_counter() - started)
            assert followed == trends
            total = trends.trend.total
    return statistics.median(whole), statistics.median(steady), total


def report(backend: str, parts: int, whole_s: float, steady_s: float, total: int) -> None:
    print(
        f"{backend:<11} {parts:>8} parts in the shift: whole shift {1000 * whole_s:8.1f} ms, "
        f"page refresh (ended intervals kept) {1000 * steady_s:7.1f} ms (read {total})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, nargs="+", default=[10_000, 100_000, 288_000])
    parser.add_argument("--pg-url", help="also on this PostgreSQL database (a schema is made and dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for parts in args.parts:
            url = f"sqlite:///{Path(tmp) / f'log-{parts}.sqlite'}"
            load(url, Path(tmp) / "media", parts)
            report("sqlite", parts, *time_trends(url, Path(tmp) / "media"))
            if args.pg_url:
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(args.pg_url)
                with admin.begin() as connection:
                    connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                try:
                    pg = make_url(args.pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
                    pg_url = pg.render_as_string(hide_password=False)
                    load(pg_url, Path(tmp) / "media", parts)
                    report("postgresql", parts, *time_trends(pg_url, Path(tmp) / "media"))
                finally:
                    with admin.begin() as connection:
                        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    admin.dispose()


if __name__ == "__main__":
    main()
