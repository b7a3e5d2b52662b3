"""Online backups of the visual log: the SQLite file while the station runs, and its media files.

SQLite's backup API copies a consistent snapshot (a WAL reader does not block the writer), so a
backup can be taken at any time. The copy is checked (``PRAGMA integrity_check``) and synced
before it gets its final name. PostgreSQL is backed up with its own tools (``pg_dump``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from core.common.fileio import fsync_dir
from core.storage.records import ChainHead


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupResult:
    database: Path  # the copy of the database file
    media_files: int  # media files copied this time (files already in the backup are skipped)
    media_bytes: int
    # The chain head of every station in the copy, also written to ``heads_file``: an anchor
    # that ``verify-log --against`` checks the live log against later.
    heads: dict[str, ChainHead] = field(default_factory=dict)
    heads_file: Path | None = None


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def backup_sqlite_file(source: Path, destination: Path) -> Path:
    """Copy a live SQLite database into ``destination`` through SQLite's backup API.

    Raises:
        OSError: The destination cannot be written (disk full, read-only).
        RuntimeError: The copy is damaged (its integrity check failed); it is removed.
        sqlite3.Error: The source cannot be read.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    partial.unlink(missing_ok=True)
    # Read-only URI: the backup must never create or change the source.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if result != "ok":
                raise RuntimeError(f"the backup copy of {source} failed its integrity check: {result}")
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    with open(partial, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, destination)
    fsync_dir(destination.parent)
    return destination


def backup(
    url: str,
    destination_dir: Path,
    *,
    media_root: Path | None = None,
    now: datetime | None = None,
) -> BackupResult:
    """Back up the database (SQLite) and, when ``media_root`` is given, the media files.

    The database copy is named after the time of the backup; media files are copied into
    ``destination_dir/media`` incrementally (a file already there with the same size is kept),
    so repeated backups to one folder only copy what is new.

    Raises:
        ValueError: The URL is not a SQLite file (back up PostgreSQL with ``pg_dump``).
    """
    source = sqlite_file(url)
    if source is None:
        raise ValueError(
            "only a SQLite visual log can be backed up by inspector; back up PostgreSQL with pg_dump"
        )
    if not source.is_file():
        raise FileNotFoundError(f"no visual log at {source}")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    database = backup_sqlite_file(source, destination_dir / f"{source.stem}-{stamp}{source.suffix}")
    heads = _heads_of(database)
    heads_file = database.with_name(database.name + ".heads")
    partial_heads = heads_file.with_name(heads_file.name + ".part")
    with open(partial_heads, "w", encoding="utf-8") as fh:
        fh.write(format_heads(heads))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial_heads, heads_file)
    files = copied_bytes = 0
    if media_root is not None and media_root.is_dir():
        target_root = destination_dir / "media"
        for path in sorted(media_root.rglob("*")):
            if not path.is_file() or path.name.endswith(".part"):
                continue
            target = target_root / path.relative_to(media_root)
            size = path.stat().st_size
            if target.is_file() and target.stat().st_size == size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            shutil.copyfile(path, partial)
            os.replace(partial, target)
            files, copied_bytes = files + 1, copied_bytes + size
    return BackupResult(
        database=database, media_files=files, media_bytes=copied_bytes, heads=heads, heads_file=heads_file
    )


def format_heads(heads: dict[str, ChainHead]) -> str:
    """The text of a ``*.heads`` file: one ``station<TAB>seq:hash`` line per station."""
    return "".join(f"{name}\t{head}\n" for name, head in sorted(heads.items()))


def _heads_of(database: Path) -> dict[str, ChainHead]:
    """The chain heads recorded in a (backup) database file, by station."""
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name, head_seq, head_hash FROM stations").fetchall()
    finally:
        connection.close()
    return {name: ChainHead(seq=int(seq), hash=str(head_hash)) for name, seq, head_hash in rows}
