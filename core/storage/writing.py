"""Recording decisions: each part checked, its media written first, then its row chained in.

A batch (``record_many``) is one transaction and one directory sync per folder: the station's
writer hands over every part that is waiting. Media files are written and synced before the rows
are committed, so a committed row always has its files; when the commit fails, the batch's files
are removed again.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from core.common.fileio import sha256_bytes
from core.common.types import Decision, Inspection, Part, Verdict
from core.storage.chain import HASH_VERSION, decision_hash
from core.storage.context import LogContext
from core.storage.errors import DuplicatePartError, environment_errors
from core.storage.heads import append_many
from core.storage.media import discard, encode_heatmap, image_payload, write_files
from core.storage.model_versions import checked_sha256, ensure_model
from core.storage.schema import DecisionRow, KeepMarkRow

_PART_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID, Crockford base 32; also a safe file name


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One part for ``VisualLog.record_many``: the arguments of ``record`` for that part."""

    part: Part
    inspection: Inspection | None
    reason: str | None = None
    keep: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _Prepared:
    decision: Decision
    values: dict[str, Any]  # the row, without station, model version, seq and hash
    link: Callable[[int, str], str]  # (seq, previous hash) -> this row's hash
    media: list[tuple[str, bytes]]  # (path relative to the media root, bytes)
    keep: bool


def record_many(
    context: LogContext, entries: Sequence[Entry], model_hash: str | None, model_name: str | None
) -> list[Decision]:
    """Store decisions in one transaction, in order (see ``VisualLog.record_many``).

    Raises:
        StorageError: Disk full, read-only, locked or unreachable storage; nothing committed.
        DuplicatePartError: A part id is already in the log; nothing written.
        ValueError: The arguments are inconsistent (a bug in the caller).
    """
    if not entries:
        return []
    prepared = [_prepare(context, entry, model_hash) for entry in entries]
    ids = [p.decision.part_id for p in prepared]
    if len(set(ids)) != len(ids):
        raise ValueError("the same part id twice in one batch")
    with environment_errors(context.where):
        station_id = context.ensure_station()
        model_version_id = (
            ensure_model(context, model_hash, model_name, prepared[0].decision.created_at)
            if model_hash
            else None
        )
        if duplicate := _first_existing(context, ids):
            raise DuplicatePartError(duplicate)

    written: list[Path] = []
    try:
        with environment_errors(str(context.media_root)):
            write_files(context.media_root, [f for item in prepared for f in item.media], written)
        rows = [
            ({**item.values, "station_id": station_id, "model_version_id": model_version_id}, item.link)
            for item in prepared
        ]
        keeps = [item.decision for item in prepared if item.keep]

        def keep_marks(connection: Connection) -> None:
            for kept in keeps:
                connection.execute(
                    insert(KeepMarkRow).values(
                        part_id=kept.part_id,
                        created_at=kept.created_at,
                        user_id=None,
                        reason="kept when recorded",
                    )
                )

        with environment_errors(context.where):
            try:
                append_many(context, station_id, DecisionRow, rows, then=keep_marks if keeps else None)
            except IntegrityError as exc:
                # Only another writer racing on the same id gets here (checked above).
                if duplicate := _first_existing(context, ids):
                    written.clear()  # they may be the other writer's files now
                    raise DuplicatePartError(duplicate) from exc
                raise
    except Exception:
        _discard_orphans(context, ids, written)
        raise
    return [item.decision for item in prepared]


def _prepare(context: LogContext, entry: Entry, model_hash: str | None) -> _Prepared:
    """Check one entry and work out its row, its media and its chain link (no I/O)."""
    part, inspection, reason = entry.part, entry.inspection, entry.reason
    part_id = part.part_id
    if not _PART_ID.fullmatch(part_id):
        raise ValueError(f"part id {part_id!r} is not a ULID (see core.common.types.new_part_id)")

    score: float | None = None
    threshold: float | None = None
    latency_ms: float | None = None
    heatmap_png: bytes | None = None
    second: dict[str, Any] = {"anomaly_score": None, "anomaly_threshold": None, "fired": None}
    if inspection is None:
        reason = reason if reason is not None else part.error
        if not reason:
            raise ValueError(f"part {part_id} was not inspected: a reason is required")
        verdict = Verdict.NOT_INSPECTED
    else:
        if model_hash is None:
            raise ValueError(f"part {part_id}: an inspection must record the model's hash")
        score, threshold = float(inspection.score), float(inspection.threshold)
        if not (math.isfinite(score) and math.isfinite(threshold)):
            raise ValueError(f"part {part_id}: score {score} and threshold {threshold} must be finite")
        latency_ms = float(inspection.latency_ms)
        if not math.isfinite(latency_ms):
            raise ValueError(f"part {part_id}: latency {latency_ms} must be finite")
        verdict = inspection.verdict  # the classifier's, or either opinion's with a second one
        second = _second_opinion(part_id, inspection)
        # The map of the check that called the part bad is the one the log keeps and shows.
        heatmap_png = encode_heatmap(inspection.shown_heatmap)
    if model_hash is not None:
        model_hash = checked_sha256(model_hash)
    content_hash = part.content_hash
    if content_hash is None and part.encoded is not None:
        content_hash = sha256_bytes(part.encoded)
    created_at = context.now()
    image = image_payload(part)

    folder = created_at.strftime("%Y/%m/%d")
    image_path = f"{folder}/{part_id}{image[1]}" if image is not None else None
    heatmap_path = f"{folder}/{part_id}_heatmap.png" if heatmap_png is not None else None
    media_bytes = (len(image[0]) if image is not None else 0) + len(heatmap_png or b"")
    # The files' hashes are links of the chain too: a replaced or deleted file is found.
    image_sha256 = sha256_bytes(image[0]) if image_path is not None and image is not None else None
    heatmap_sha256 = (
        sha256_bytes(heatmap_png) if heatmap_path is not None and heatmap_png is not None else None
    )
    values: dict[str, Any] = {
        "part_id": part_id,
        "created_at": created_at,
        "source_ref": part.source_ref,
        "content_hash": content_hash,
        "verdict": verdict.value,
        "score": score,
        "threshold": threshold,
        "reason": reason,
        "latency_ms": latency_ms,
        "image_path": image_path,
        "heatmap_path": heatmap_path,
        "media_bytes": media_bytes,
        "hash_version": HASH_VERSION,
        "image_sha256": image_sha256,
        "heatmap_sha256": heatmap_sha256,
    }
    station = context.station

    values.update(second)  # hash version 3: the second opinion's columns are chain fields too

    def link(seq: int, previous: str) -> str:
        # The row's own values are what the hash covers (the columns are the hash's fields).
        return decision_hash(previous, station=station, seq=seq, model_hash=model_hash, **values)

    files: list[tuple[str, bytes]] = []
    if image_path is not None and image is not None:
        files.append((image_path, image[0]))
    if heatmap_path is not None and heatmap_png is not None:
        files.append((heatmap_path, heatmap_png))
    decision = Decision(
        part_id=part_id,
        station=station,
        source_ref=part.source_ref,
        created_at=created_at,
        content_hash=content_hash,
        verdict=verdict,
        score=score,
        threshold=threshold,
        reason=reason,
        latency_ms=latency_ms,
        model_hash=model_hash,
        image_path=image_path,
        heatmap_path=heatmap_path,
        **second,
    )
    return _Prepared(decision=decision, values=values, link=link, media=files, keep=entry.keep)


def _second_opinion(part_id: str, inspection: Inspection) -> dict[str, Any]:
    """The anomaly columns of an inspected part: all None without a second opinion, whose rows are
    the classifier's alone (as every row before revision 0007)."""
    anomaly, limit = inspection.anomaly_score, inspection.anomaly_threshold
    if anomaly is None or limit is None:
        return {"anomaly_score": None, "anomaly_threshold": None, "fired": None}
    anomaly, limit = float(anomaly), float(limit)
    if not (math.isfinite(anomaly) and math.isfinite(limit)):
        raise ValueError(f"part {part_id}: anomaly score {anomaly} and threshold {limit} must be finite")
    fired = inspection.fired
    return {"anomaly_score": anomaly, "anomaly_threshold": limit, "fired": fired.value if fired else None}


def _first_existing(context: LogContext, part_ids: Sequence[str]) -> str | None:
    """The first of ``part_ids`` that already has a row, or None."""
    with context.sessions() as session:
        if len(part_ids) == 1:
            found = {session.scalar(select(DecisionRow.part_id).where(DecisionRow.part_id == part_ids[0]))}
        else:
            found = set(session.scalars(select(DecisionRow.part_id).where(DecisionRow.part_id.in_(part_ids))))
    return next((p for p in part_ids if p in found), None)


def _discard_orphans(context: LogContext, part_ids: Sequence[str], written: list[Path]) -> None:
    """Remove the media files of rows that were not committed (frees space when disk is full)."""
    if not written:
        return
    try:
        if _first_existing(context, part_ids) is not None:  # committed after all: the files are the rows'
            return
    except Exception:  # cannot tell: keeping an orphan is harmless, losing a heatmap is not
        return
    discard(written)
