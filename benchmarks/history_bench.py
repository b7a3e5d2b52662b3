"""History review on a visual log of a million decisions: time per page and per filter.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/history_bench.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/history_bench.py --rows 200000 --db /tmp/h.sqlite --keep
    .venv/bin/python benchmarks/history_bench.py --db /tmp/h.sqlite --gui         # reuse the file, time the GUI too

How the log is made: writing a million parts through ``VisualLog.record`` (media files synced,
one commit per group) would take hours on this machine, so the rows are bulk-inserted into the
real, migrated schema (revision 0006's indexes included) with a valid hash chain per station
(``core.storage.chain``'s own hash functions, as ``storage_bench.py`` does): two stations, one
part every ~2.6 s each over 30 days, 90 % good, 8 % bad, 2 % not inspected, two models, and 1 %
of the parts reviewed (a third of those overridden). The decisions name 64 real PNG files in the
media root in turn, so that the GUI's thumbnails decode real pictures; the media hashes are not
in the chain (``hash_version`` 1), so ``verify-log --media`` is not meaningful on this file.

Then, through ``VisualLog.history`` (the code the history view runs): for each filter and sort,
the count, the first page, a page in the middle (from the key of the row halfway, as a user who
paged there holds it; finding that row is set-up, not timed), the page after it, and the last
page. With ``--gui``, the history view's model is timed too: from asking for a page to the rows
shown, and to their thumbnails shown (offscreen Qt).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import create_engine, insert, select, text, update
from storage_bench import timed  # median of repeats after a warm-up: one definition for the benchmarks

from core.common.fileio import sha256_bytes
from core.common.types import Verdict
from core.storage import VisualLog
from core.storage.chain import GENESIS_HASH, decision_hash, review_hash
from core.storage.history import HistoryCursor, HistoryQuery, HistorySort, ReviewState
from core.storage.schema import DecisionRow, ModelVersion, ReviewRow, Station, UserRow

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STATIONS = ("line-a", "line-b")
IMAGES = 64
PAGE = 50


def _images(media_root: Path) -> list[str]:
    """64 small real part pictures (a ring with a defect on some), written once."""
    folder = media_root / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    rng = np.random.default_rng(5)
    for i in range(IMAGES):
        image = np.full((160, 160), 40, np.uint8)
        cv2.circle(image, (80, 80), 60, 170, -1)
        cv2.circle(image, (80, 80), 22, 30, -1)
        if i % 4 == 0:
            x, y = (int(v) for v in rng.integers(30, 130, 2))
            cv2.line(image, (x, y), (x + 18, y + 9), 60, 3)
        image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
        name = f"bench/part_{i:02d}.png"
        cv2.imwrite(str(media_root / name), image)
        names.append(name)
    return names


def _decisions(
    count: int, station_ids: dict[str, int], model_ids: list[int], hashes: list[str], images: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    rnd = random.Random(1)
    step = timedelta(days=30) / count
    previous = dict.fromkeys(STATIONS, GENESIS_HASH)
    for n in range(1, count + 1):
        station = STATIONS[n % 2]
        seq = (n + 1) // 2
        created_at = T0 + step * n
        part_id = f"{n:026d}"
        roll = rnd.random()
        model = 0 if n < count // 2 else 1
        if roll < 0.02:
            verdict, score, threshold, reason, latency = "not_inspected", None, None, "camera timeout", None
            model_hash, model_id, image = None, None, None
        else:
            score = round(rnd.betavariate(0.6, 6) if roll < 0.92 else rnd.betavariate(6, 1.2), 6)
            threshold, reason, latency = 0.5, None, 4.0 + rnd.random()
            verdict = "bad" if score >= threshold else "good"
            model_hash, model_id, image = hashes[model], model_ids[model], images[n % len(images)]
        row_hash = decision_hash(
            previous[station], station=station, seq=seq, part_id=part_id, created_at=created_at,
            source_ref=f"cam-1#{n}", content_hash=None, verdict=verdict, score=score,
            threshold=threshold, reason=reason, latency_ms=latency, model_hash=model_hash,
            image_path=image, heatmap_path=None, media_bytes=0,
        )  # fmt: skip
        previous[station] = row_hash
        yield station, {
            "part_id": part_id, "station_id": station_ids[station], "created_at": created_at,
            "source_ref": f"cam-1#{n}", "content_hash": None, "verdict": verdict, "score": score,
            "threshold": threshold, "reason": reason, "latency_ms": latency, "model_version_id": model_id,
            "image_path": image, "heatmap_path": None, "seq": seq, "row_hash": row_hash,
            "media_bytes": 0, "hash_version": 1, "image_sha256": None, "heatmap_sha256": None,
        }  # fmt: skip


def generate(path: Path, media_root: Path, count: int) -> float:
    """Bulk-load ``count`` chained decisions of two stations and 1 % reviews; seconds taken."""
    started = time.perf_counter()
    url = f"sqlite:///{path}"
    VisualLog(url, media_root=media_root, station=STATIONS[0]).close()  # migrate
    images = _images(media_root)
    engine = create_engine(url)
    hashes = [sha256_bytes(b"model A"), sha256_bytes(b"model B")]
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA synchronous=OFF")  # a bulk load, not the station
        station_ids = {
            name: connection.execute(insert(Station.__table__).values(name=name)).inserted_primary_key[0]
            for name in STATIONS
        }
        model_ids = [
            connection.execute(
                insert(ModelVersion.__table__).values(hash=h, name=f"model {'AB'[i]}", created_at=T0)
            ).inserted_primary_key[0]
            for i, h in enumerate(hashes)
        ]
        user_id, user = connection.execute(select(UserRow.id, UserRow.name).limit(1)).one()
    last: dict[str, tuple[int, str]] = {}
    reviewed: list[tuple[str, dict[str, Any]]] = []
    rnd = random.Random(2)
    batch: list[dict[str, Any]] = []
    for station, row in _decisions(count, station_ids, model_ids, hashes, images):
        batch.append(row)
        last[station] = (row["seq"], row["row_hash"])
        if row["verdict"] != "not_inspected" and rnd.random() < 0.01:
            reviewed.append((station, row))
        if len(batch) == 20_000:
            with engine.begin() as connection:
                connection.execute(insert(DecisionRow.__table__), batch)
            batch = []
    if batch:
        with engine.begin() as connection:
            connection.execute(insert(DecisionRow.__table__), batch)
    reviews = []
    for station, row in reviewed:
        seq, previous = last[station]
        overridden = rnd.random() < 1 / 3
        verdict = {"good": "bad", "bad": "good"}[row["verdict"]] if overridden else row["verdict"]
        outcome = "overridden" if overridden else "confirmed"
        created_at = row["created_at"] + timedelta(hours=1)
        row_hash = review_hash(
            previous, station=station, seq=seq + 1, created_at=created_at, part_id=row["part_id"],
            user=user, verdict=verdict, outcome=outcome, comment=None,
        )  # fmt: skip
        last[station] = (seq + 1, row_hash)
        reviews.append(
            {"station_id": row["station_id"], "seq": seq + 1, "row_hash": row_hash, "created_at": created_at,
             "part_id": row["part_id"], "user_id": user_id, "verdict": verdict, "outcome": outcome, "comment": None}
        )  # fmt: skip
    with engine.begin() as connection:
        if reviews:
            connection.execute(insert(ReviewRow.__table__), reviews)
        for station, (seq, row_hash) in last.items():
            connection.execute(
                update(Station.__table__)
                .where(Station.id == station_ids[station])
                .values(head_seq=seq, head_hash=row_hash)
            )
    engine.dispose()
    return time.perf_counter() - started


def middle_cursor(log: VisualLog, query: HistoryQuery, total: int) -> HistoryCursor | None:
    """The key of the row halfway down the query's order (set-up: OFFSET, not timed)."""
    from core.storage.history import _where

    column = DecisionRow.score if query.sort.by_score else DecisionRow.created_at
    order = (
        (column.desc(), DecisionRow.part_id.desc())
        if query.sort.descending
        else (column, DecisionRow.part_id)
    )
    statement = (
        _where(select(column, DecisionRow.part_id), query).order_by(*order).offset(total // 2).limit(1)
    )
    with log.engine.connect() as connection:
        found = connection.execute(statement).first()
    return None if found is None else HistoryCursor(key=found[0], part_id=found[1])


CASES: list[tuple[str, HistoryQuery]] = [
    ("all, newest first", HistoryQuery()),
    ("all, oldest first", HistoryQuery(sort=HistorySort.OLDEST)),
    ("all, highest score", HistoryQuery(sort=HistorySort.SCORE_HIGH)),
    ("one station", HistoryQuery(stations=("line-b",))),
    ("bad", HistoryQuery(verdicts=(Verdict.BAD,))),
    ("not inspected", HistoryQuery(verdicts=(Verdict.NOT_INSPECTED,))),
    ("one day (shift-sized range)", HistoryQuery(since=T0 + timedelta(days=15), until=T0 + timedelta(days=16))),
    ("score band 0.45-0.55", HistoryQuery(score_min=0.45, score_max=0.55)),
    ("score band 0.45-0.55, by score", HistoryQuery(score_min=0.45, score_max=0.55, sort=HistorySort.SCORE_HIGH)),
    ("model B", HistoryQuery(model_hash=sha256_bytes(b"model B"))),
    ("reviewed", HistoryQuery(review=ReviewState.REVIEWED)),
    ("overridden", HistoryQuery(review=ReviewState.OVERRIDDEN)),
    ("unreviewed bad", HistoryQuery(review=ReviewState.UNREVIEWED, verdicts=(Verdict.BAD,))),
    ("bad, station b, one week", HistoryQuery(verdicts=(Verdict.BAD,), stations=("line-b",), since=T0 + timedelta(days=7), until=T0 + timedelta(days=14))),
]  # fmt: skip


def bench_core(log: VisualLog) -> list[tuple[str, int, float, float, float, float, float]]:
    results = []
    for name, query in CASES:
        count_ms, total = timed(lambda q=query: log.history_count(q), 1)
        first_ms, _ = timed(lambda q=query: log.history(q, limit=PAGE), 3)
        middle = middle_cursor(log, query, total)
        middle_ms, page = timed(lambda q=query, c=middle: log.history(q, after=c, limit=PAGE), 3)
        next_ms, _ = timed(lambda q=query, p=page: log.history(q, after=p.last, limit=PAGE), 3)
        last_ms, _ = timed(lambda q=query: log.history(q, from_end=True, limit=PAGE), 3)
        results.append((name, total, count_ms, first_ms, middle_ms, next_ms, last_ms))
        print(
            f"  {name:<34} {total:>9,} rows  count {count_ms:7.1f}  first {first_ms:6.1f}  "
            f"middle {middle_ms:6.1f}  next {next_ms:6.1f}  last {last_ms:6.1f} ms",
            flush=True,
        )
    return results


def bench_gui(url: str, media_root: Path) -> list[tuple[str, float, float]]:
    """The history view's model: ms from asking for a page to its rows, and to its thumbnails."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer
    from PySide6.QtWidgets import QApplication

    from inspector_gui.history_model import HistoryModel

    app = QApplication.instance() or QApplication([])
    model = HistoryModel(open_log=lambda: VisualLog(url, media_root=media_root), page_size=PAGE)
    results = []
    try:
        for name, query in (CASES[0], CASES[4], CASES[7], CASES[10]):
            for label, action in (
                ("first", lambda q=query: model.set_query(q)),
                ("next", model.next_page),
                ("last", model.last_page),
                ("previous", model.previous_page),
            ):
                clock = QElapsedTimer()
                clock.start()
                action()
                rows_ms = thumbs_ms = -1.0
                while thumbs_ms < 0 and clock.elapsed() < 10_000:
                    app.processEvents()
                    if rows_ms < 0 and not model.loading:
                        rows_ms = clock.nsecsElapsed() / 1e6
                    if rows_ms >= 0 and model.thumbnails_pending == 0:
                        thumbs_ms = clock.nsecsElapsed() / 1e6
                    time.sleep(0.0005)
                results.append((f"{name}: {label}", rows_ms, thumbs_ms))
                print(
                    f"  {name + ': ' + label:<40} rows shown {rows_ms:6.1f} ms, thumbnails {thumbs_ms:6.1f} ms",
                    flush=True,
                )
    finally:
        model.close()
    del app
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="SQLite file: reused when it exists, else generated there")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument(
        "--gui", action="store_true", help="also time the history view's model (offscreen Qt)"
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="history-bench-"))
    path = args.db or folder / "history.sqlite"
    media_root = path.parent / "media"
    if not path.exists():
        print(f"generating {args.rows:,} decisions in {path} ...", flush=True)
        print(f"  generated in {generate(path, media_root, args.rows):.1f} s", flush=True)
    url = f"sqlite:///{path}"
    started = time.perf_counter()
    log = VisualLog(url, media_root=media_root, station=STATIONS[0])
    print(f"opened in {1000 * (time.perf_counter() - started):.0f} ms (planner statistics refreshed)")
    with log:
        with log.engine.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM decisions")).scalar_one()
        print(f"{rows:,} decisions; page = {PAGE} rows; median of 3 after a warm-up")
        bench_core(log)
    if args.gui:
        print("history view (model + loader thread + thumbnails):")
        bench_gui(url, media_root)
    if not args.keep and args.db is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
