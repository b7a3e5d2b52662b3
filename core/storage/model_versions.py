"""Model versions in the log: a model is named by the SHA-256 of its file, with a name and a card.

Decisions and threshold changes refer to a model version by row id; the row is created the first
time a hash is seen, and its name and metadata, once stored, are kept: a hash always stands for
the same file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.records import ModelInfo
from core.storage.schema import ModelVersion

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def checked_sha256(value: str) -> str:
    """``value`` in lower case, checked to be a SHA-256 hex digest.

    Raises:
        ValueError: It is not one.
    """
    lowered = value.lower()
    if not _SHA256_HEX.fullmatch(lowered):
        raise ValueError(f"model hash {value!r} is not a SHA-256 hex digest")
    return lowered


def ensure_model(context: LogContext, model_hash: str, model_name: str | None, first_seen: datetime) -> int:
    """The row id of a model version, created on first use (database errors pass through)."""
    model_id = context.model_ids.get(model_hash)
    if model_id is None:
        values = {"hash": model_hash, "name": model_name, "created_at": first_seen}
        model_id = context.get_or_create(ModelVersion, ModelVersion.hash, model_hash, values)
        context.model_ids[model_hash] = model_id
    return model_id


def register_model(
    context: LogContext, model_hash: str, name: str | None, metadata: Mapping[str, Any] | None
) -> ModelInfo:
    """Record a model version with its name and metadata (see ``VisualLog.register_model``)."""
    model_hash = checked_sha256(model_hash)
    text = None if metadata is None else json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
    created_at = context.now()
    with environment_errors(context.where):
        model_id = ensure_model(context, model_hash, name, created_at)
        with context.writer.begin() as connection:
            for column, value in (("name", name), ("metadata_json", text)):
                if value is not None:
                    connection.execute(
                        update(ModelVersion)
                        .where(ModelVersion.id == model_id, getattr(ModelVersion, column).is_(None))
                        .values({column: value})
                    )
    return next(m for m in models(context) if m.hash == model_hash)


def models(context: LogContext) -> list[ModelInfo]:
    """Every model version the log knows, oldest first."""
    m = ModelVersion
    with environment_errors(context.where), context.sessions() as session:
        rows = session.execute(select(m.hash, m.name, m.metadata_json, m.created_at).order_by(m.id)).all()
    return [
        ModelInfo(hash=h, name=n, metadata=None if j is None else json.loads(j), created_at=c)
        for h, n, j, c in rows
    ]
