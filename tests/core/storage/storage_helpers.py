"""Shared helpers of the visual log tests (fixtures are in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.common.fileio import sha256_bytes
from core.common.types import Inspection, Part
from core.storage import VisualLog
from core.storage.auth import Actor

START = datetime(2025, 3, 14, 9, 30, 0, 123456, tzinfo=UTC)
MODEL_HASH = sha256_bytes(b"a tiny model")


ADMIN_PASSWORD = "admin-password"


def login(log: VisualLog, name: str, role: str = "supervisor", password: str | None = None) -> Actor:
    """Register ``name`` with ``role`` and a password (by the first admin, made when the log has
    none) and log them in; an existing user just logs in."""
    password = password or f"{name}-password"
    if log.access.needs_admin():
        log.add_user("admin", role="admin", password=ADMIN_PASSWORD)
    if name == "admin":
        return log.authenticate("admin", ADMIN_PASSWORD)
    if name not in {u.name for u in log.users()}:
        admin = log.authenticate("admin", ADMIN_PASSWORD)
        log.add_user(name, role=role, password=password, actor=admin)
    return log.authenticate(name, password)


class FakeClock:
    """Advances ``step`` per call (one second by default), so order and folders are predictable."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
        self.step = step
        self.now = start - step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def make_part(*, image: bool = True, source_ref: str = "cam-1#frame-7", **kwargs: Any) -> Part:
    pixels = np.random.default_rng(7).integers(0, 256, size=(24, 32), dtype=np.uint8) if image else None
    return Part(source_ref=source_ref, arrived_at=START, image=pixels, **kwargs)


def make_inspection(score: float = 0.8, threshold: float = 0.5, seed: int = 1) -> Inspection:
    heatmap = np.random.default_rng(seed).integers(0, 256, size=(12, 16), dtype=np.uint8)
    return Inspection(score=score, threshold=threshold, heatmap=heatmap, latency_ms=12.5)


def rows_in_db(log: VisualLog, table: str = "decisions") -> int:
    with log.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def media_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def tamper(log: VisualLog, table: str, statement: str, **params: Any) -> None:
    """Run an UPDATE or DELETE on ``table`` behind the application's back, as someone with SQL access could.

    The append-only triggers are switched off for it (SQLite: dropped and made again; PostgreSQL:
    disabled by the tables' owner), which is what anyone editing the log has to do first.
    """
    with log.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            connection.execute(text(statement), params)
            connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            return
        triggers = connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"), {"t": table}
        ).all()
        for name, _ in triggers:
            connection.execute(text(f"DROP TRIGGER {name}"))
        connection.execute(text(statement), params)
        for _, sql in triggers:
            connection.execute(text(sql))
