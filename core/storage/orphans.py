"""Orphan media files: written for a row that was never committed (a crash between the two).

``writing`` removes a failed batch's files itself, but a process killed in between leaves its
files (and ``write_atomic``'s ``.part`` files) behind. When a log opens, the day folders a crash
can have left them in (the last few days, and the day of the station's newest decision) are
swept: a file that no decision names and that is older than a grace period goes.
The grace period keeps a writer in flight (another process sharing the media root) safe.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select

from core.storage.context import LogContext
from core.storage.media import discard
from core.storage.schema import DecisionRow

_log = logging.getLogger(__name__)

GRACE = timedelta(minutes=10)
_DAYS_BACK = 2  # day folders before today (by the log's clock) that are swept
_BATCH = 500  # part ids per query


def clean_orphans(context: LogContext, *, grace: timedelta = GRACE) -> int:
    """Remove unreferenced media files older than ``grace`` from recent day folders; their count.

    Errors are logged, never raised: a leftover file is harmless, a station that does not start
    is not.
    """
    try:
        removed = _clean(context, grace)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        _log.warning("orphan media files not cleaned up: %s", exc)
        return 0
    if removed:
        _log.warning("removed %d orphan media files (left by an interrupted write)", removed)
    return removed


def _clean(context: LogContext, grace: timedelta) -> int:
    # The wall clock, not the log's: a test's or replay's clock may count its calls.
    today = datetime.now(UTC)
    days = {(today - timedelta(days=k)).strftime("%Y/%m/%d") for k in range(_DAYS_BACK + 1)}
    with context.engine.connect() as connection:
        station_id = context.find_station_id(connection)
        newest = (
            connection.scalar(
                select(func.max(DecisionRow.created_at)).where(DecisionRow.station_id == station_id)
            )
            if station_id is not None
            else None
        )
    if newest is not None:
        days |= {(newest - timedelta(days=k)).strftime("%Y/%m/%d") for k in range(2)}
    deadline = time.time() - grace.total_seconds()
    candidates: dict[str, Path] = {}  # relative path -> file
    for day in days:
        folder = context.media_root / day
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and path.stat().st_mtime < deadline:
                candidates[f"{day}/{path.name}"] = path
    if not candidates:
        return 0
    referenced = _referenced(context, candidates)
    orphans = [path for relative, path in candidates.items() if relative not in referenced]
    discard(orphans)
    return len(orphans)


def _referenced(context: LogContext, candidates: dict[str, Path]) -> set[str]:
    """The candidates' relative paths that some decision (of any station) names."""
    # A .part file is never named by a row: past the grace period it is always a leftover.
    relatives = sorted(candidates)
    found: set[str] = set()
    d = DecisionRow
    with context.engine.connect() as connection:
        for start in range(0, len(relatives), _BATCH):
            batch = relatives[start : start + _BATCH]
            for image, heatmap in connection.execute(
                select(d.image_path, d.heatmap_path).where(
                    or_(d.image_path.in_(batch), d.heatmap_path.in_(batch))
                )
            ):
                found.update(p for p in (image, heatmap) if p is not None)
    return found
