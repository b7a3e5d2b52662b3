"""Reviewed parts as a labelled folder to retrain on: ``good/``, ``bad/`` and a manifest.

A supervisor's review is the truth about a part; the model's verdict is only what the station
said. The export takes every reviewed part (the newest review decides its label), copies the
image the station kept (the original file's bytes) into the class folder of that label, and
writes ``manifest.json`` last, with each part's id, station, label, file, SHA-256, the hash the
visual log's chain recorded for the file, the model's verdict and the review. ``inspector
train FOLDER`` reads the class folders as they are (``core.training.data.scan_folder``).

A file whose bytes no longer match the hash the chain recorded is not exported (it is not the
picture the review was about); nor is a part whose image is gone (retention) or was never kept.
Both are listed in the manifest under ``skipped`` with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from core.common.fileio import sha256_bytes, write_atomic
from core.common.types import Verdict
from core.storage import VisualLog
from core.storage.history import HistoryCursor, HistoryQuery, HistoryRow, HistorySort, ReviewState

MANIFEST = "manifest.json"
FORMAT = "inspector-labelled-export"
FORMAT_VERSION = 1
_PAGE = 500

ProgressFn = Callable[[int, int], None]  # (parts done, parts in all)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledExport:
    """What an export wrote.

    Attributes:
        folder: The export folder.
        manifest: Its manifest file.
        good: Parts written to ``good/``.
        bad: Parts written to ``bad/``.
        skipped: (part id, why) of reviewed parts left out.
    """

    folder: Path
    manifest: Path
    good: int
    bad: int
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def parts(self) -> int:
        return self.good + self.bad


def export_labelled(
    log: VisualLog,
    out_dir: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stations: tuple[str, ...] | None = None,
    progress: ProgressFn | None = None,
) -> LabelledExport:
    """Write every reviewed part of the log (all stations, or ``stations``) to ``out_dir``.

    Args:
        log: The visual log (any station's; the export reads every station sharing it).
        out_dir: A new or empty folder.
        since: Only parts recorded at or after this time.
        until: Only parts recorded before this time.
        stations: Only these stations.
        progress: Called with (done, total) as parts are written.

    Returns:
        The counts and the manifest's path.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty.
        ValueError: No reviewed part could be exported.
        StorageError: The log could not be read.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"export folder {out_dir} is not empty: choose a new folder")
    query = HistoryQuery(
        since=since, until=until, stations=stations, review=ReviewState.REVIEWED, sort=HistorySort.OLDEST
    )
    total = log.history_count(query)
    if total == 0:
        raise ValueError("no reviewed part matches: review parts first (history view or inspector review)")
    for label in (Verdict.GOOD, Verdict.BAD):
        (out_dir / label.value).mkdir(parents=True, exist_ok=True)

    items: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    done = 0
    after: HistoryCursor | None = None
    while True:
        page = log.history(query, after=after, limit=_PAGE)
        for row in page.rows:
            item, why = _export_one(log, row, out_dir)
            if item is not None:
                items.append(item)
            else:
                skipped.append((row.decision.part_id, why))
            done += 1
            if progress is not None:
                progress(done, total)
        if not page.has_next:
            break
        after = page.last

    good = sum(1 for item in items if item["label"] == Verdict.GOOD.value)
    bad = len(items) - good
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": make_url(log.url).render_as_string(hide_password=True),
        "filter": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "stations": list(stations) if stations else None,
        },
        "counts": {"good": good, "bad": bad, "skipped": len(skipped)},
        "parts": items,
        "skipped": [{"part_id": part_id, "reason": why} for part_id, why in skipped],
    }
    manifest = out_dir / MANIFEST
    write_atomic(manifest, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    if not items:
        raise ValueError(f"none of the {len(skipped)} reviewed parts could be exported; see {manifest}")
    return LabelledExport(folder=out_dir, manifest=manifest, good=good, bad=bad, skipped=tuple(skipped))


def _export_one(log: VisualLog, row: HistoryRow, out_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """Copy one reviewed part's image into its class folder; (manifest item, "") or (None, why)."""
    d = row.decision
    label = row.review_verdict
    assert label is not None  # the query keeps reviewed parts only
    if d.image_path is None:
        return None, "no image was kept for this part"
    source = log.media_path(d.image_path)
    if not source.is_file():
        return None, f"image file {d.image_path} is missing (removed by retention?)"
    data = source.read_bytes()
    digest = sha256_bytes(data)
    if row.image_sha256 is not None and digest != row.image_sha256:
        return (
            None,
            f"image file {d.image_path} changed since it was recorded (hash differs from the chain's)",
        )
    target = out_dir / label.value / f"{d.part_id}{source.suffix.lower()}"
    write_atomic(target, data)
    os.utime(target, (d.created_at.timestamp(), d.created_at.timestamp()))
    review = log.reviews_of(d.part_id)[-1]
    return {
        "part_id": d.part_id,
        "station": d.station,
        "label": label.value,
        "file": target.relative_to(out_dir).as_posix(),
        "sha256": digest,
        "recorded_sha256": row.image_sha256,
        "recorded_at": d.created_at.isoformat(),
        "source_ref": d.source_ref,
        "model_verdict": d.verdict.value,
        "score": d.score,
        "threshold": d.threshold,
        "model_hash": d.model_hash,
        "review_outcome": review.outcome.value,
        "reviewed_by": review.user,
        "reviewed_at": review.created_at.isoformat(),
        "comment": review.comment,
        "reviews": row.reviews,
    }, ""
