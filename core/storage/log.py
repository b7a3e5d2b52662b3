"""The visual log: every decision, with the image and heatmap the operator saw.

Rows go to SQLite (one station) or PostgreSQL (several stations); images and heatmaps go to
files under the media root, and the rows hold paths relative to it. Media files are written
(atomically, synced) before the row is committed, so a committed row always has its files; a
crash in between leaves only an orphan file, never a row without its heatmap.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import paths
from core.fileio import sha256_bytes, write_atomic
from core.storage.db import make_engine
from core.storage.errors import DuplicatePartError, environment_errors
from core.storage.schema import DecisionRow, ModelVersion, Station, create_schema
from core.types import Decision, Inspection, Part, Verdict, verdict_for

_log = logging.getLogger(__name__)

_PART_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID, Crockford base 32; also a safe file name
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VisualLog:
    """Append-only record of decisions, with their images and heatmaps on disk.

    One writer: a log is made and used on one thread (the inspection worker). Other threads or
    processes that only read open their own ``VisualLog`` on the same URL. Queries other than
    ``get`` are scoped to this log's station, which matters only when several stations share one
    PostgreSQL database.

    Args:
        url: SQLAlchemy URL of the database; defaults to ``core.paths.default_db_url()``.
        media_root: Folder of images and heatmaps; defaults to ``core.paths.media_root()``.
        station: Name of the station whose decisions this log records.
        clock: Returns the current time, UTC-aware; for tests and replays.

    Raises:
        StorageError: The database cannot be opened or its tables created.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        media_root: Path | None = None,
        station: str = "station-1",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._url = url if url is not None else paths.default_db_url()
        self._media_root = Path(media_root) if media_root is not None else paths.media_root()
        self._station = station
        self._clock = clock or _utc_now
        self._station_id: int | None = None
        self._model_ids: dict[str, int] = {}
        self._closed = False
        self._where = make_url(self._url).render_as_string(hide_password=True)
        with environment_errors(self._where):
            self._engine = make_engine(self._url)
        try:
            with environment_errors(str(self._media_root)):
                self._media_root.mkdir(parents=True, exist_ok=True)
            with environment_errors(self._where), self._engine.begin() as connection:
                create_schema(connection)
        except BaseException:
            self._engine.dispose()
            raise
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    # ------------------------------------------------------------------ properties

    @property
    def engine(self) -> Engine:
        """The engine, for maintenance and tests; ORM rows still stay inside ``core.storage``."""
        return self._engine

    @property
    def media_root(self) -> Path:
        return self._media_root

    @property
    def station(self) -> str:
        return self._station

    # ------------------------------------------------------------------ writing

    def record(
        self,
        part: Part,
        inspection: Inspection | None,
        *,
        model_hash: str | None,
        model_name: str | None = None,
        reason: str | None = None,
    ) -> Decision:
        """Store one decision: media files first, then the row.

        Args:
            part: The part as it arrived. Its original bytes (``encoded``) are kept when given,
                otherwise its decoded image as PNG.
            inspection: What the model said, or None when the part was not inspected.
            model_hash: SHA-256 (hex) of the model file; required with an inspection.
            model_name: A readable name for the model, stored the first time a hash is seen.
            reason: Why the part was not inspected (defaults to ``part.error``); required when
                ``inspection`` is None, kept as a note otherwise.

        Returns:
            The decision as committed, with media paths relative to the media root.

        Raises:
            StorageError: Disk full, read-only, locked or unreachable storage. Nothing is
                committed for this part; earlier rows are intact, and a later call may succeed.
            DuplicatePartError: The part id is already in the log (its files are left alone).
            ValueError: The arguments are inconsistent (a bug in the caller).
        """
        self._check_open()
        part_id = part.part_id
        if not _PART_ID.fullmatch(part_id):
            raise ValueError(f"part id {part_id!r} is not a ULID (see core.types.new_part_id)")

        score: float | None = None
        threshold: float | None = None
        latency_ms: float | None = None
        heatmap_png: bytes | None = None
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
            verdict = verdict_for(score, threshold)
            heatmap_png = _encode_heatmap(inspection.heatmap)
        if model_hash is not None:
            model_hash = _checked_sha256(model_hash)
        content_hash = part.content_hash
        if content_hash is None and part.encoded is not None:
            content_hash = sha256_bytes(part.encoded)
        created_at = self._clock()
        if created_at.tzinfo is None or created_at.utcoffset() is None:
            raise ValueError("the log's clock must return timezone-aware datetimes")
        created_at = created_at.astimezone(UTC)
        image = _image_payload(part)

        with environment_errors(self._where):
            station_id = self._ensure_station()
            model_version_id = self._ensure_model(model_hash, model_name) if model_hash else None
            if self._exists(part_id):
                raise DuplicatePartError(part_id)

        folder = created_at.strftime("%Y/%m/%d")
        image_path = f"{folder}/{part_id}{image[1]}" if image is not None else None
        heatmap_path = f"{folder}/{part_id}_heatmap.png" if heatmap_png is not None else None
        row = DecisionRow(
            part_id=part_id,
            station_id=station_id,
            created_at=created_at,
            source_ref=part.source_ref,
            content_hash=content_hash,
            verdict=verdict.value,
            score=score,
            threshold=threshold,
            reason=reason,
            latency_ms=latency_ms,
            model_version_id=model_version_id,
            image_path=image_path,
            heatmap_path=heatmap_path,
        )

        written: list[Path] = []
        try:
            with environment_errors(str(self._media_root)):
                media = [(image_path, image[0] if image else None), (heatmap_path, heatmap_png)]
                for relative, data in media:
                    if relative is not None and data is not None:
                        path = self._media_root / relative
                        written.append(path)  # before writing: a failed write leaves a .part file
                        _make_dirs_durable(path.parent)
                        write_atomic(path, data)
                if written:
                    _fsync_dir(written[0].parent)  # the renames themselves survive a power loss
            with environment_errors(self._where):
                try:
                    with self._sessions.begin() as session:
                        session.add(row)
                except IntegrityError as exc:
                    # Only another writer racing on the same id gets here (checked above).
                    if self._exists(part_id):
                        written.clear()  # they may be the other writer's files now
                        raise DuplicatePartError(part_id) from exc
                    raise
        except Exception:
            self._discard_orphans(part_id, written)
            raise
        return _to_decision(row, self._station, model_hash)

    # ------------------------------------------------------------------ reading

    def get(self, part_id: str) -> Decision | None:
        """The decision about one part, from any station, or None."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            result = session.execute(_DECISIONS.where(DecisionRow.part_id == part_id)).first()
        if result is None:
            return None
        row, station, model_hash = result
        return _to_decision(row, station, model_hash)

    def latest(self, n: int = 50) -> list[Decision]:
        """This station's ``n`` most recent decisions, newest first."""
        self._check_open()
        if n <= 0:
            return []
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return []
            query = (
                _DECISIONS.where(DecisionRow.station_id == station_id)
                .order_by(DecisionRow.created_at.desc(), DecisionRow.part_id.desc())
                .limit(n)
            )
            return [
                _to_decision(row, station, model_hash) for row, station, model_hash in session.execute(query)
            ]

    def count(self, verdict: Verdict | None = None) -> int:
        """How many decisions this station has recorded, all or of one verdict."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return 0
            query = select(func.count()).select_from(DecisionRow).where(DecisionRow.station_id == station_id)
            if verdict is not None:
                query = query.where(DecisionRow.verdict == Verdict(verdict).value)
            return int(session.scalar(query) or 0)

    def counts(self) -> dict[Verdict, int]:
        """This station's decisions per verdict; every verdict is a key, zero included."""
        self._check_open()
        totals = dict.fromkeys(Verdict, 0)
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return totals
            query = (
                select(DecisionRow.verdict, func.count())
                .where(DecisionRow.station_id == station_id)
                .group_by(DecisionRow.verdict)
            )
            for verdict, number in session.execute(query):
                totals[Verdict(verdict)] = int(number)
        return totals

    def load_heatmap(self, decision: Decision) -> np.ndarray | None:
        """The stored heatmap (uint8, H x W), or None when the decision has none.

        A heatmap file that is missing or unreadable is logged and reported as None: the GUI
        shows the decision without it rather than failing.
        """
        if decision.heatmap_path is None:
            return None
        path = self.media_path(decision.heatmap_path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            _log.warning("heatmap of part %s cannot be read: %s", decision.part_id, exc)
            return None
        # imdecode from bytes rather than imread: imread cannot open non-ASCII paths on Windows.
        heatmap = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if heatmap is None or heatmap.dtype != np.uint8 or heatmap.ndim != 2:
            _log.warning("heatmap of part %s at %s is not an 8-bit grayscale PNG", decision.part_id, path)
            return None
        return np.asarray(heatmap)

    def media_path(self, relative: str) -> Path:
        """The absolute path of a media file named in a decision.

        Raises:
            ValueError: ``relative`` is absolute or leaves the media root.
        """
        pure = PurePosixPath(relative)
        if pure.is_absolute() or PurePath(relative).is_absolute() or ".." in pure.parts or not pure.parts:
            raise ValueError(f"{relative!r} is not a path inside the media root")
        return self._media_root.joinpath(*pure.parts)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close every connection. The log cannot be used afterwards; closing twice is fine."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VisualLog({self._where!r}, station={self._station!r})"

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the visual log is closed")

    def _exists(self, part_id: str) -> bool:
        with self._sessions() as session:
            return session.get(DecisionRow, part_id) is not None

    def _find_station(self, session: Session) -> int | None:
        if self._station_id is None:
            self._station_id = session.scalar(select(Station.id).where(Station.name == self._station))
        return self._station_id

    def _ensure_station(self) -> int:
        if self._station_id is None:
            self._station_id = self._get_or_create(
                Station, Station.name, self._station, {"name": self._station}
            )
        return self._station_id

    def _ensure_model(self, model_hash: str, model_name: str | None) -> int:
        model_id = self._model_ids.get(model_hash)
        if model_id is None:
            values = {"hash": model_hash, "name": model_name, "created_at": self._clock()}
            model_id = self._get_or_create(ModelVersion, ModelVersion.hash, model_hash, values)
            self._model_ids[model_hash] = model_id
        return model_id

    def _get_or_create(
        self, model: type[Station | ModelVersion], key: Any, value: str, values: dict[str, Any]
    ) -> int:
        query = select(model.id).where(key == value)
        with self._sessions() as session:
            found = session.scalar(query)
            if found is not None:
                return found
            row = model(**values)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                # Another station sharing the database created it first.
                session.rollback()
                found = session.scalar(query)
                if found is None:
                    raise
                return found
            return row.id

    def _discard_orphans(self, part_id: str, written: list[Path]) -> None:
        """Remove the media files of a row that was not committed (frees space when disk is full)."""
        if not written:
            return
        try:
            if self._exists(part_id):  # committed after all: the files belong to the row
                return
        except Exception:  # cannot tell: keeping an orphan is harmless, losing a heatmap is not
            return
        for path in written:
            # write_atomic's temporary file too, when the disk filled up during the write.
            for leftover in (path, path.with_name(path.name + ".part")):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError as exc:
                    _log.warning("orphan media file %s left behind: %s", leftover, exc)


# Decisions with their station's name and model's hash; built once, no engine involved.
_DECISIONS = (
    select(DecisionRow, Station.name, ModelVersion.hash)
    .join(Station, DecisionRow.station_id == Station.id)
    .outerjoin(ModelVersion, DecisionRow.model_version_id == ModelVersion.id)
)


def _to_decision(row: DecisionRow, station: str, model_hash: str | None) -> Decision:
    return Decision(
        part_id=row.part_id,
        station=station,
        source_ref=row.source_ref,
        created_at=row.created_at,
        content_hash=row.content_hash,
        verdict=Verdict(row.verdict),
        score=row.score,
        threshold=row.threshold,
        reason=row.reason,
        latency_ms=row.latency_ms,
        model_hash=model_hash,
        image_path=row.image_path,
        heatmap_path=row.heatmap_path,
    )


def _checked_sha256(value: str) -> str:
    lowered = value.lower()
    if not _SHA256_HEX.fullmatch(lowered):
        raise ValueError(f"model hash {value!r} is not a SHA-256 hex digest")
    return lowered


def _encode_heatmap(heatmap: Any) -> bytes:
    if (
        not isinstance(heatmap, np.ndarray)
        or heatmap.dtype != np.uint8
        or heatmap.ndim != 2
        or heatmap.size == 0
    ):
        described = (
            f"{heatmap.dtype} {heatmap.shape}" if isinstance(heatmap, np.ndarray) else type(heatmap).__name__
        )
        raise ValueError(f"a heatmap must be a non-empty 2-D uint8 array, not {described}")
    return _encode_png(heatmap)


def _encode_png(pixels: np.ndarray) -> bytes:
    try:
        ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    except cv2.error as exc:
        raise ValueError(f"cannot encode a {pixels.dtype} {pixels.shape} image as PNG: {exc}") from exc
    if not ok:
        raise ValueError(f"cannot encode a {pixels.dtype} {pixels.shape} image as PNG")
    return bytes(buffer.tobytes())


def _image_payload(part: Part) -> tuple[bytes, str] | None:
    """The bytes to keep for a part's image and their file extension."""
    if part.encoded is not None:
        return part.encoded, _original_suffix(part.source_ref, part.encoded)
    if part.image is not None:
        return _encode_png(part.image), ".png"
    return None


def _original_suffix(source_ref: str, data: bytes) -> str:
    suffix = PurePath(source_ref).suffix.lower()
    if suffix in _IMAGE_SUFFIXES:
        return suffix
    for magic, sniffed in _MAGIC:
        if data.startswith(magic):
            return sniffed
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".bin"  # not an image we know: keep the bytes, do not pretend they are a PNG


def _make_dirs_durable(folder: Path) -> None:
    """Create ``folder`` and its missing parents, syncing each new entry into its parent."""
    missing = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        _fsync_dir(directory.parent)


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for syncing; NTFS journals renames
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
