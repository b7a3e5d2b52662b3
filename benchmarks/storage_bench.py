"""Visual log benchmark: insert throughput with heatmaps, and the GUI's queries on a million rows.

    .venv/bin/python benchmarks/storage_bench.py                # SQLite only
    .venv/bin/python benchmarks/storage_bench.py --pg-url postgresql+psycopg://inspector:inspector@127.0.0.1/inspector_test

(``INSPECTOR_TEST_PG_URL`` works as well.) PostgreSQL runs in a scratch schema, dropped at the
end. Inserts go through ``VisualLog.record`` as the station does: image and heatmap files
written and synced, then the row committed (``synchronous=FULL`` on SQLite). The million rows
are generated in bulk, with a valid hash chain, straight into the tables (their media files are
not written); then every query runs on it through ``VisualLog``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

from core.common.fileio import sha256_bytes
from core.common.types import Inspection, Part, Verdict
from core.reports import ShiftPlan, write_shift_report
from core.storage import VisualLog
from core.storage.chain import GENESIS_HASH, decision_hash
from core.storage.schema import DecisionRow, ModelVersion, Station

STATION = "bench"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------- backends


@contextmanager
def sqlite_backend(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'bench.sqlite'}"


@contextmanager
def pg_backend(url: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ---------------------------------------------------------------------------- inserts


def bench_inserts(
    url: str, media_root: Path, count: int, image_side: int, heatmap_side: int
) -> dict[str, float]:
    """Decisions per second through ``VisualLog.record``, each with an image and a heatmap file."""
    rng = np.random.default_rng(0)
    model_hash = sha256_bytes(b"bench model")
    images = [rng.integers(0, 256, size=(image_side, image_side), dtype=np.uint8) for _ in range(8)]
    heatmaps = [rng.integers(0, 256, size=(heatmap_side, heatmap_side), dtype=np.uint8) for _ in range(8)]
    latencies = []
    with VisualLog(url, media_root=media_root, station="insert-bench") as log:
        log.record(
            Part(source_ref="warm-up", arrived_at=log.now(), image=images[0]),
            Inspection(score=0.1, threshold=0.5, heatmap=heatmaps[0], latency_ms=1.0),
            model_hash=model_hash,
        )
        started = time.perf_counter()
        for number in range(count):
            part = Part(source_ref=f"cam#{number}", arrived_at=log.now(), image=images[number % 8])
            inspection = Inspection(
                score=float(rng.random()), threshold=0.5, heatmap=heatmaps[number % 8], latency_ms=5.0
            )
            before = time.perf_counter()
            log.record(part, inspection, model_hash=model_hash, model_name="bench")
            latencies.append(time.perf_counter() - before)
        elapsed = time.perf_counter() - started
        assert log.verify().ok
    latencies.sort()
    return {
        "rows_per_s": count / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


# ---------------------------------------------------------------------------- a million rows


def _rows(
    count: int, station: str, model_hashes: list[str], model_ids: list[int], station_id: int
) -> Iterator[dict[str, Any]]:
    """Decisions one every ~2.6 s over 30 days: 90 % good, 8 % bad, 2 % not inspected."""
    rnd = random.Random(1)
    step = timedelta(days=30) / count
    previous = GENESIS_HASH
    for seq in range(1, count + 1):
        created_at = T0 + step * seq
        part_id = f"{seq:026d}"
        roll = rnd.random()
        model = 0 if seq < count // 2 else 1
        if roll < 0.02:
            verdict, score, threshold, reason, latency = "not_inspected", None, None, "camera timeout", None
            model_hash, model_id, image, heatmap, media = None, None, None, None, 0
        else:
            score = rnd.betavariate(0.6, 6) if roll < 0.92 else rnd.betavariate(6, 1.2)
            threshold = 0.5
            verdict = "bad" if score >= threshold else "good"
            reason, latency = None, 4.0 + rnd.random()
            model_hash, model_id = model_hashes[model], model_ids[model]
            day = created_at.strftime("%Y/%m/%d")
            image, heatmap, media = f"{day}/{part_id}.png", f"{day}/{part_id}_heatmap.png", 60_000
        row_hash = decision_hash(
            previous, station=station, seq=seq, part_id=part_id, created_at=created_at,
            source_ref=f"cam-1#{seq}", content_hash=None, verdict=verdict, score=score,
            threshold=threshold, reason=reason, latency_ms=latency, model_hash=model_hash,
            image_path=image, heatmap_path=heatmap, media_bytes=media,
        )  # fmt: skip
        previous = row_hash
        yield {
            "part_id": part_id, "station_id": station_id, "created_at": created_at,
            "source_ref": f"cam-1#{seq}", "content_hash": None, "verdict": verdict, "score": score,
            "threshold": threshold, "reason": reason, "latency_ms": latency, "model_version_id": model_id,
            "image_path": image, "heatmap_path": heatmap, "seq": seq, "row_hash": row_hash,
            "media_bytes": media, "hash_version": 1, "image_sha256": None, "heatmap_sha256": None,
        }  # fmt: skip


def generate(url: str, media_root: Path, count: int) -> float:
    """Bulk-load ``count`` chained decisions of station ``bench``; returns the seconds it took."""
    started = time.perf_counter()
    VisualLog(url, media_root=media_root, station=STATION).close()  # migrate
    engine = create_engine(url)
    hashes = [sha256_bytes(b"model A"), sha256_bytes(b"model B")]
    with engine.begin() as connection:
        station_id = connection.execute(insert(Station.__table__).values(name=STATION)).inserted_primary_key[
            0
        ]
        model_ids = [
            connection.execute(
                insert(ModelVersion.__table__).values(hash=h, name=f"model {i}", created_at=T0)
            ).inserted_primary_key[0]
            for i, h in enumerate(hashes)
        ]
    rows = _rows(count, STATION, hashes, model_ids, station_id)
    last: dict[str, Any] = {}
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            columns = list(DecisionRow.__table__.columns.keys())
            with cursor.copy(f"COPY decisions ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([row[c] for c in columns])
                    last = row
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA synchronous=OFF")  # a bulk load, not the station
        batch: list[dict[str, Any]] = []
        table = DecisionRow.__table__
        for row in rows:
            batch.append(row)
            if len(batch) == 20_000:
                with engine.begin() as connection:
                    connection.execute(insert(table), batch)
                last, batch = batch[-1], []
        if batch:
            with engine.begin() as connection:
                connection.execute(insert(table), batch)
            last = batch[-1]
    with engine.begin() as connection:
        connection.execute(
            update(Station.__table__)
            .where(Station.id == station_id)
            .values(head_seq=last["seq"], head_hash=last["row_hash"])
        )
        if connection.dialect.name == "postgresql":
            # What autovacuum does shortly after a bulk load. On SQLite the log itself analyzes
            # the tables the next time it opens (core.storage.statistics): bench_queries times it.
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def timed(function: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median milliseconds of ``repeat`` runs (after one warm-up), and the last result."""
    result = function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), result


def bench_queries(url: str, media_root: Path, out: Path) -> list[tuple[str, float, str]]:
    day = T0 + timedelta(days=15)
    plan = ShiftPlan.parse("06:00=early,14:00=late,22:00=night", "UTC")
    shift = plan.shift_on(day.date(), "early")
    results = []
    started = time.perf_counter()
    log = VisualLog(url, media_root=media_root, station=STATION)
    results.append(
        ("open (statistics refreshed)", 1000 * (time.perf_counter() - started), "once, after the bulk load")
    )
    with log:
        queries: list[tuple[str, Callable[[], Any], Callable[[Any], str], int]] = [
            ("latest 50", lambda: log.latest(50), lambda r: f"{len(r)} rows", 5),
            ("one shift, newest 1000", lambda: log.find(since=shift.start, until=shift.end, limit=1000), lambda r: f"{len(r)} rows", 5),
            ("one shift, all rows", lambda: log.find(since=shift.start, until=shift.end, limit=None), lambda r: f"{len(r)} rows", 3),
            ("bad, newest 100", lambda: log.find(verdicts=[Verdict.BAD], limit=100), lambda r: f"{len(r)} rows", 5),
            ("bad in one shift", lambda: log.find(verdicts=[Verdict.BAD], since=shift.start, until=shift.end, limit=None), lambda r: f"{len(r)} rows", 5),
            ("score band 0.45-0.55, newest 100", lambda: log.find(score_min=0.45, score_max=0.55, limit=100), lambda r: f"{len(r)} rows", 5),
            ("score band 0.2-0.8, newest 100", lambda: log.find(score_min=0.2, score_max=0.8, limit=100), lambda r: f"{len(r)} rows", 5),
            ("score >= 0.99 in one day", lambda: log.find(score_min=0.99, since=day, until=day + timedelta(days=1), limit=None), lambda r: f"{len(r)} rows", 5),
            ("counts per hour, one day", lambda: log.counts_per_hour(day, day + timedelta(days=1)), lambda r: f"{len(r)} hours", 5),
            ("counts per hour, 30 days", lambda: log.counts_per_hour(T0, T0 + timedelta(days=31)), lambda r: f"{len(r)} hours", 3),
            ("counts per verdict, whole log", lambda: log.counts(), lambda r: f"{sum(r.values())} rows", 3),
            ("chain head at a shift's end", lambda: log.chain_head_before(shift.end), lambda r: f"seq {r.seq}", 5),
            ("shift report (CSV, no verify)", lambda: write_shift_report(log, shift, out, verify=False), lambda r: f"{r.summary['parts']} parts", 3),
            ("verify-log, whole chain", lambda: log.verify(), lambda r: f"ok={r.ok}, {r.records} records", 1),
        ]  # fmt: skip
        for name, function, describe, repeat in queries:
            milliseconds, result = timed(function, repeat)
            results.append((name, milliseconds, describe(result)))
    return results


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("INSPECTOR_TEST_PG_URL"))
    parser.add_argument("--rows", type=int, default=1_000_000, help="decisions in the generated log")
    parser.add_argument("--inserts", type=int, default=300, help="decisions recorded for the throughput")
    parser.add_argument("--image-side", type=int, default=512, help="side of the stored image (px)")
    parser.add_argument("--heatmap-side", type=int, default=224, help="side of the stored heatmap (px)")
    parser.add_argument("--dir", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    scratch = args.dir or Path(tempfile.mkdtemp(prefix="inspector-bench-"))
    backends: list[tuple[str, Callable[[], Any]]] = [("SQLite", lambda: sqlite_backend(scratch))]
    if args.pg_url:
        backends.append(("PostgreSQL", lambda: pg_backend(args.pg_url)))
    print(f"scratch: {scratch}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    try:
        for name, backend in backends:
            with backend() as url:
                media = scratch / f"media-{name}"
                insert_figures = bench_inserts(url, media, args.inserts, args.image_side, args.heatmap_side)
                print(
                    f"\n{name}: record() with a {args.image_side}px image and a {args.heatmap_side}px heatmap: "
                    f"{insert_figures['rows_per_s']:.0f} rows/s "
                    f"(p50 {insert_figures['p50_ms']:.1f} ms, p99 {insert_figures['p99_ms']:.1f} ms)"
                )
                seconds = generate(url, media, args.rows)
                print(f"{name}: generated {args.rows:,} chained decisions in {seconds:.0f} s")
                for query, milliseconds, described in bench_queries(url, media, scratch / f"reports-{name}"):
                    print(f"  {query:<36} {milliseconds:10.1f} ms   {described}")
    finally:
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
