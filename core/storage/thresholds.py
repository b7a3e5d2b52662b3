"""Threshold changes: who moved a station's threshold, from what to what, and why; chained records.

A change is appended to the station's hash chain like a decision, so a report can prove which
threshold was in force for every part.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.storage.auth import Actor, Permission, require
from core.storage.chain import threshold_change_hash
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.heads import append
from core.storage.model_versions import checked_sha256, ensure_model
from core.storage.records import ThresholdChange
from core.storage.schema import ModelVersion, ThresholdChangeRow, UserRow


def record_threshold_change(
    context: LogContext,
    old: float | None,
    new: float,
    *,
    actor: Actor,
    reason: str,
    model_hash: str | None,
    model_name: str | None,
    evidence: dict[str, Any] | None = None,
) -> ThresholdChange:
    """Append a threshold change to the station's chain (see ``VisualLog.record_threshold_change``).

    Raises:
        NotAllowedError: ``actor`` may not change a threshold (recorded).
        ValueError: A threshold outside 0..1, an empty reason, or evidence JSON cannot hold.
        StorageError: The database refused; nothing is recorded.
    """
    for label, value in (("old", old), ("new", new)):
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"the {label} threshold {value} must be between 0 and 1")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a threshold change needs a reason")
    if model_hash is not None:
        model_hash = checked_sha256(model_hash)
    evidence_json = json.dumps(evidence, sort_keys=True, allow_nan=False) if evidence is not None else None
    old_value, new_value = (None if old is None else float(old)), float(new)
    with environment_errors(context.where):
        user_id = require(context, actor, Permission.CHANGE_THRESHOLD)
        user = actor.name
        created_at = context.now()
        station_id = context.ensure_station()
        model_version_id = ensure_model(context, model_hash, model_name, created_at) if model_hash else None
        values = {
            "station_id": station_id,
            "created_at": created_at,
            "user_id": user_id,
            "old_threshold": old_value,
            "new_threshold": new_value,
            "reason": reason,
            "model_version_id": model_version_id,
            "evidence": evidence_json,
        }
        seq, _ = append(
            context,
            station_id,
            ThresholdChangeRow,
            values,
            lambda seq, previous: threshold_change_hash(
                previous,
                station=context.station,
                seq=seq,
                created_at=created_at,
                user=user,
                old=old_value,
                new=new_value,
                reason=reason,
                model_hash=model_hash,
            ),
        )
    return ThresholdChange(
        station=context.station,
        seq=seq,
        created_at=created_at,
        user=user,
        old=old_value,
        new=new_value,
        reason=reason,
        model_hash=model_hash,
        evidence=evidence,
    )


def current_threshold(context: LogContext) -> float | None:
    """The station's threshold as last recorded, or None (one indexed row: cheap enough per second)."""
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return None
        t = ThresholdChangeRow
        value = session.scalar(
            select(t.new_threshold).where(t.station_id == station_id).order_by(t.seq.desc()).limit(1)
        )
    return None if value is None else float(value)


def threshold_changes(
    context: LogContext, since: datetime | None, until: datetime | None
) -> list[ThresholdChange]:
    """The station's threshold changes in ``[since, until)``, oldest first."""
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return []
        t = ThresholdChangeRow
        query = (
            select(
                t.seq,
                t.created_at,
                UserRow.name,
                t.old_threshold,
                t.new_threshold,
                t.reason,
                ModelVersion.hash,
                t.evidence,
            )
            .join(UserRow, t.user_id == UserRow.id)
            .outerjoin(ModelVersion, t.model_version_id == ModelVersion.id)
            .where(t.station_id == station_id)
            .order_by(t.seq)
        )
        if since is not None:
            query = query.where(t.created_at >= since)
        if until is not None:
            query = query.where(t.created_at < until)
        return [
            ThresholdChange(
                station=context.station,
                seq=seq,
                created_at=at,
                user=user,
                old=old,
                new=new,
                reason=reason,
                model_hash=model,
                evidence=json.loads(evidence) if evidence else None,
            )
            for seq, at, user, old, new, reason, model, evidence in session.execute(query)
        ]
