"""The visual log: every decision, with the image and heatmap the operator saw.

Rows go to SQLite (one station) or PostgreSQL (several stations); images and heatmaps go to
files under the media root, and the rows hold paths relative to it. Media files are written
(atomically, synced) before the row is committed, so a committed row always has its files; a
crash in between leaves only an orphan file, never a row without its heatmap.

Decisions, threshold changes and reviews are appended to their station's hash chain (see
``core.storage.chain``): each append updates the chain head on the station's row and inserts the
record in one transaction, and the head update only succeeds when nobody appended in between,
so two writers of one station (the station and a supervisor's review) never fork the chain.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import cv2
import numpy as np
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker
from sqlalchemy.sql import Select

from core.common import paths
from core.common.fileio import sha256_bytes, write_atomic
from core.common.types import Decision, Inspection, Part, Verdict, verdict_for
from core.storage import chain
from core.storage.db import WRITE, make_engine
from core.storage.errors import DuplicatePartError, NotAllowedError, StorageError, environment_errors
from core.storage.migrate import upgrade
from core.storage.records import (
    SUPERVISING_ROLES,
    SYSTEM_USER,
    ChainHead,
    ChainVerification,
    DecisionRecord,
    HourCount,
    ModelInfo,
    Review,
    ReviewOutcome,
    Role,
    ShiftDefinition,
    ThresholdChange,
    User,
)
from core.storage.schema import (
    GENESIS_HASH,
    DecisionRow,
    KeepMarkRow,
    ModelVersion,
    ReviewRow,
    RoleRow,
    ShiftRow,
    Station,
    ThresholdChangeRow,
    UserRow,
)

if TYPE_CHECKING:
    from core.storage.retention import RetentionPolicy, RetentionResult

_log = logging.getLogger(__name__)

_PART_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID, Crockford base 32; also a safe file name
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)
_APPEND_ATTEMPTS = 20  # another writer of the same station moved the head: reload and retry


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


class _StaleHead(Exception):
    """Another writer appended to the chain since the head was read; roll back and retry."""


class VisualLog:
    """Append-only record of decisions, with their images and heatmaps on disk.

    One writer: a log is made and used on one thread (the inspection worker). Other threads or
    processes that only read open their own ``VisualLog`` on the same URL. Queries other than
    ``get`` are scoped to this log's station, which matters only when several stations share one
    PostgreSQL database. Opening a log brings its schema to the newest revision (a SQLite file is
    backed up first, see ``core.storage.migrate``).

    Args:
        url: SQLAlchemy URL of the database; defaults to ``core.common.paths.default_db_url()``.
        media_root: Folder of images and heatmaps; defaults to ``core.common.paths.media_root()``.
        station: Name of the station whose decisions this log records.
        clock: Returns the current time, UTC-aware; for tests and replays.

    Raises:
        StorageError: The database cannot be opened or migrated.
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
        self._heads: dict[int, ChainHead] = {}  # chain heads as this log last wrote them
        self._closed = False
        self._where = make_url(self._url).render_as_string(hide_password=True)
        with environment_errors(self._where):
            self._engine = make_engine(self._url)
        try:
            with environment_errors(str(self._media_root)):
                self._media_root.mkdir(parents=True, exist_ok=True)
            with environment_errors(self._where):
                self.backup_before_upgrade = upgrade(self._engine, url=self._url)
        except BaseException:
            self._engine.dispose()
            raise
        self._writer = self._engine.execution_options(**WRITE)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        # Sessions that read and then write take the write lock at BEGIN (see db.WRITE).
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)

    # ------------------------------------------------------------------ properties

    @property
    def engine(self) -> Engine:
        """The engine, for maintenance and tests; ORM rows still stay inside ``core.storage``."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL, password included (for maintenance tools such as backups)."""
        return self._url

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
        keep: bool = False,
    ) -> Decision:
        """Store one decision: media files first, then the row, as the next link of the chain.

        Args:
            part: The part as it arrived. Its original bytes (``encoded``) are kept when given,
                otherwise its decoded image as PNG.
            inspection: What the model said, or None when the part was not inspected.
            model_hash: SHA-256 (hex) of the model file; required with an inspection.
            model_name: A readable name for the model, stored the first time a hash is seen.
            reason: Why the part was not inspected (defaults to ``part.error``); required when
                ``inspection`` is None, kept as a note otherwise.
            keep: Never remove this decision by retention (e.g. a part kept as evidence).

        Returns:
            The decision as committed, with media paths relative to the media root.

        Raises:
            StorageError: Disk full, read-only, locked or unreachable storage. Nothing is
                committed for this part; earlier rows are intact, and a later call may succeed.
            DuplicatePartError: The part id is already in the log (its files are left alone).
            ValueError: The arguments are inconsistent (a bug in the caller).
        """
        entry = Entry(part=part, inspection=inspection, reason=reason, keep=keep)
        return self.record_many([entry], model_hash=model_hash, model_name=model_name)[0]

    def record_many(
        self, entries: Sequence[Entry], *, model_hash: str | None, model_name: str | None = None
    ) -> list[Decision]:
        """Store several decisions in one transaction (group commit), in order.

        The station's writer hands over every part that is waiting, so a burst costs one commit
        and one directory sync instead of one per part. All or nothing: when this raises,
        no row of ``entries`` is committed, and a caller that wants the others recorded anyway
        records them one by one with ``record``.

        Raises:
            As ``record``, for any of the entries (``DuplicatePartError`` names the first
            duplicate; nothing is written then).
        """
        self._check_open()
        if not entries:
            return []
        prepared = [self._prepare(entry, model_hash) for entry in entries]
        ids = [p.decision.part_id for p in prepared]
        if len(set(ids)) != len(ids):
            raise ValueError("the same part id twice in one batch")
        with environment_errors(self._where):
            station_id = self._ensure_station()
            model_version_id = (
                self._ensure_model(model_hash, model_name, prepared[0].decision.created_at)
                if model_hash
                else None
            )
            if duplicate := self._first_existing(ids):
                raise DuplicatePartError(duplicate)

        written: list[Path] = []
        try:
            with environment_errors(str(self._media_root)):
                folders: dict[Path, None] = {}
                for item in prepared:
                    for relative, data in item.media:
                        path = self._media_root / relative
                        written.append(path)  # before writing: a failed write leaves a .part file
                        if path.parent not in folders:
                            _make_dirs_durable(path.parent)
                        folders[path.parent] = None
                        write_atomic(path, data)
                for folder in folders:
                    _fsync_dir(folder)  # the renames themselves survive a power loss
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

            with environment_errors(self._where):
                try:
                    self._append_many(station_id, DecisionRow, rows, then=keep_marks if keeps else None)
                except IntegrityError as exc:
                    # Only another writer racing on the same id gets here (checked above).
                    if duplicate := self._first_existing(ids):
                        written.clear()  # they may be the other writer's files now
                        raise DuplicatePartError(duplicate) from exc
                    raise
        except Exception:
            self._discard_orphans(ids, written)
            raise
        return [item.decision for item in prepared]

    def _prepare(self, entry: Entry, model_hash: str | None) -> _Prepared:
        """Check one entry and work out its row, its media and its chain link (no I/O)."""
        part, inspection, reason = entry.part, entry.inspection, entry.reason
        part_id = part.part_id
        if not _PART_ID.fullmatch(part_id):
            raise ValueError(f"part id {part_id!r} is not a ULID (see core.common.types.new_part_id)")

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
            if not math.isfinite(latency_ms):
                raise ValueError(f"part {part_id}: latency {latency_ms} must be finite")
            verdict = verdict_for(score, threshold)
            heatmap_png = _encode_heatmap(inspection.heatmap)
        if model_hash is not None:
            model_hash = _checked_sha256(model_hash)
        content_hash = part.content_hash
        if content_hash is None and part.encoded is not None:
            content_hash = sha256_bytes(part.encoded)
        created_at = self.now()
        image = _image_payload(part)

        folder = created_at.strftime("%Y/%m/%d")
        image_path = f"{folder}/{part_id}{image[1]}" if image is not None else None
        heatmap_path = f"{folder}/{part_id}_heatmap.png" if heatmap_png is not None else None
        media_bytes = (len(image[0]) if image is not None else 0) + len(heatmap_png or b"")
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
        }

        def link(seq: int, previous: str) -> str:
            return chain.decision_hash(
                previous,
                station=self._station,
                seq=seq,
                part_id=part_id,
                created_at=created_at,
                source_ref=part.source_ref,
                content_hash=content_hash,
                verdict=verdict.value,
                score=score,
                threshold=threshold,
                reason=reason,
                latency_ms=latency_ms,
                model_hash=model_hash,
                image_path=image_path,
                heatmap_path=heatmap_path,
                media_bytes=media_bytes,
            )

        media: list[tuple[str, bytes]] = []
        if image_path is not None and image is not None:
            media.append((image_path, image[0]))
        if heatmap_path is not None and heatmap_png is not None:
            media.append((heatmap_path, heatmap_png))
        decision = Decision(
            part_id=part_id,
            station=self._station,
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
        )
        return _Prepared(decision=decision, values=values, link=link, media=media, keep=entry.keep)

    def record_threshold_change(
        self,
        old: float | None,
        new: float,
        *,
        user: str,
        reason: str,
        model_hash: str | None = None,
        model_name: str | None = None,
    ) -> ThresholdChange:
        """Record that this station's threshold changed; the next decisions carry ``new``.

        Args:
            old: The threshold in force until now; None when the station had none recorded.
            new: The threshold in force from now on, 0..1.
            user: Who changed it: a registered supervisor or admin (``system`` for the station's
                own start-up setting).
            reason: Why, in the user's words; required.
            model_hash: The model the threshold applies to (SHA-256 hex), when known.
            model_name: A readable name for that model.

        Raises:
            NotAllowedError: The user is unknown, inactive, or not a supervisor or admin.
            ValueError: A threshold outside 0..1 or an empty reason.
            StorageError: As for ``record``; nothing is recorded.
        """
        self._check_open()
        for label, value in (("old", old), ("new", new)):
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"the {label} threshold {value} must be between 0 and 1")
        reason = (reason or "").strip()
        if not reason:
            raise ValueError("a threshold change needs a reason")
        if model_hash is not None:
            model_hash = _checked_sha256(model_hash)
        created_at = self.now()
        old_value, new_value = (None if old is None else float(old)), float(new)
        with environment_errors(self._where):
            user_id = self._supervisor_id(user, "change a threshold")
            station_id = self._ensure_station()
            model_version_id = self._ensure_model(model_hash, model_name, created_at) if model_hash else None
            values = {
                "station_id": station_id,
                "created_at": created_at,
                "user_id": user_id,
                "old_threshold": old_value,
                "new_threshold": new_value,
                "reason": reason,
                "model_version_id": model_version_id,
            }
            seq, _ = self._append(
                station_id,
                ThresholdChangeRow,
                values,
                lambda seq, previous: chain.threshold_change_hash(
                    previous,
                    station=self._station,
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
            station=self._station,
            seq=seq,
            created_at=created_at,
            user=user,
            old=old_value,
            new=new_value,
            reason=reason,
            model_hash=model_hash,
        )

    def review(self, part_id: str, *, verdict: Verdict, user: str, comment: str | None = None) -> Review:
        """Record a supervisor's confirmation or override of a decision, as a new linked row.

        The decision itself is never changed. A review joins the chain of the decision's
        station (which may be another station sharing the database).

        Args:
            part_id: The decision reviewed.
            verdict: What the supervisor says the part is (good or bad). The same verdict as the
                model's confirms it; another overrides it.
            user: A registered supervisor or admin.
            comment: Optional note.

        Raises:
            KeyError: No decision with this part id.
            NotAllowedError: The user may not review.
            ValueError: ``verdict`` is not good or bad.
            StorageError: As for ``record``.
        """
        self._check_open()
        verdict = Verdict(verdict)
        if verdict is Verdict.NOT_INSPECTED:
            raise ValueError("a review says whether the part is good or bad")
        created_at = self.now()
        with environment_errors(self._where):
            user_id = self._supervisor_id(user, "review decisions")
            with self._sessions() as session:
                found = session.execute(
                    select(DecisionRow.verdict, DecisionRow.station_id, Station.name)
                    .join(Station, DecisionRow.station_id == Station.id)
                    .where(DecisionRow.part_id == part_id)
                ).first()
            if found is None:
                raise KeyError(f"no decision about part {part_id} in the visual log")
            original, station_id, station = found
            outcome = ReviewOutcome.CONFIRMED if original == verdict.value else ReviewOutcome.OVERRIDDEN
            values = {
                "station_id": station_id,
                "created_at": created_at,
                "part_id": part_id,
                "user_id": user_id,
                "verdict": verdict.value,
                "outcome": outcome.value,
                "comment": comment,
            }
            seq, _ = self._append(
                station_id,
                ReviewRow,
                values,
                lambda seq, previous: chain.review_hash(
                    previous,
                    station=station,
                    seq=seq,
                    created_at=created_at,
                    part_id=part_id,
                    user=user,
                    verdict=verdict.value,
                    outcome=outcome.value,
                    comment=comment,
                ),
            )
        return Review(
            station=station,
            seq=seq,
            created_at=created_at,
            part_id=part_id,
            user=user,
            verdict=verdict,
            outcome=outcome,
            comment=comment,
        )

    def keep(self, part_id: str, *, user: str, reason: str) -> None:
        """Mark a decision so that retention never removes it (nor its image and heatmap).

        Raises:
            KeyError: No decision with this part id.
            NotAllowedError: The user is not a supervisor or admin.
            ValueError: An empty reason.
        """
        self._check_open()
        reason = (reason or "").strip()
        if not reason:
            raise ValueError("keeping a decision needs a reason")
        created_at = self.now()
        with environment_errors(self._where):
            user_id = self._supervisor_id(user, "keep decisions")
            if not self._exists(part_id):
                raise KeyError(f"no decision about part {part_id} in the visual log")
            with self._writer.begin() as connection:
                connection.execute(
                    insert(KeepMarkRow).values(
                        part_id=part_id, created_at=created_at, user_id=user_id, reason=reason
                    )
                )

    # ------------------------------------------------------------------ users and shifts

    def add_user(self, name: str, *, role: Role | str, display_name: str | None = None) -> User:
        """Register a user. Users are configuration: they may later be deactivated, never removed.

        Raises:
            ValueError: The name is empty or taken, or the role unknown.
        """
        self._check_open()
        name = name.strip()
        if not name:
            raise ValueError("a user needs a name")
        role = Role(role)
        created_at = self.now()
        with environment_errors(self._where), self._write_sessions() as session:
            role_id = session.scalar(select(RoleRow.id).where(RoleRow.name == role.value))
            if role_id is None:
                raise ValueError(f"role {role} is not in the database")
            session.add(
                UserRow(
                    name=name, display_name=display_name, role_id=role_id, active=True, created_at=created_at
                )
            )
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                    raise ValueError(f"user {name!r} exists already") from exc
                raise
        return User(name=name, role=role, display_name=display_name, active=True, created_at=created_at)

    def set_user_active(self, name: str, active: bool) -> None:
        """Deactivate (or reactivate) a user; their past records keep naming them."""
        self._check_open()
        if name == SYSTEM_USER:
            raise ValueError("the system user cannot be deactivated")
        with environment_errors(self._where), self._writer.begin() as connection:
            changed = connection.execute(
                update(UserRow).where(UserRow.name == name).values(active=active)
            ).rowcount
        if not changed:
            raise KeyError(f"no user {name!r}")

    def register_model(
        self, model_hash: str, *, name: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> ModelInfo:
        """Record a model version with its name and metadata (e.g. its model card) as JSON.

        Decisions name their model by hash; call this when a model is loaded so the log also
        keeps what the hash stands for. A name or metadata already stored is kept: a hash always
        stands for the same file.

        Raises:
            ValueError: Not a SHA-256 hex digest, or metadata that JSON cannot hold.
        """
        self._check_open()
        model_hash = _checked_sha256(model_hash)
        text = None if metadata is None else json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
        created_at = self.now()
        with environment_errors(self._where):
            model_id = self._ensure_model(model_hash, name, created_at)
            with self._writer.begin() as connection:
                for column, value in (("name", name), ("metadata_json", text)):
                    if value is not None:
                        connection.execute(
                            update(ModelVersion)
                            .where(ModelVersion.id == model_id, getattr(ModelVersion, column).is_(None))
                            .values({column: value})
                        )
        return next(m for m in self.models() if m.hash == model_hash)

    def models(self) -> list[ModelInfo]:
        """Every model version the log knows, oldest first."""
        self._check_open()
        m = ModelVersion
        with environment_errors(self._where), self._sessions() as session:
            rows = session.execute(select(m.hash, m.name, m.metadata_json, m.created_at).order_by(m.id)).all()
        return [
            ModelInfo(hash=h, name=n, metadata=None if j is None else json.loads(j), created_at=c)
            for h, n, j, c in rows
        ]

    def users(self) -> list[User]:
        """Every registered user, by name."""
        self._check_open()
        query = (
            select(UserRow.name, RoleRow.name, UserRow.display_name, UserRow.active, UserRow.created_at)
            .join(RoleRow, UserRow.role_id == RoleRow.id)
            .order_by(UserRow.name)
        )
        with environment_errors(self._where), self._sessions() as session:
            return [
                User(name=n, role=Role(r), display_name=d, active=bool(a), created_at=c)
                for n, r, d, a, c in session.execute(query)
            ]

    def shift_plan(self) -> list[ShiftDefinition]:
        """The shifts of the plan in order of their start time; empty when none is configured."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            rows = session.execute(
                select(ShiftRow.name, ShiftRow.start_local, ShiftRow.timezone).order_by(ShiftRow.start_local)
            ).all()
        return [ShiftDefinition(name=n, start=s, timezone=tz) for n, s, tz in rows]

    def set_shift_plan(self, shifts: Sequence[ShiftDefinition]) -> None:
        """Replace the shift plan (configuration; reports of past shifts use the plan given to them)."""
        self._check_open()
        names = [s.name for s in shifts]
        starts = [s.start for s in shifts]
        if len(set(names)) != len(names) or len(set(starts)) != len(starts):
            raise ValueError("shift names and start times must be unique")
        for shift in shifts:
            if not _HH_MM.fullmatch(shift.start) or not shift.name.strip():
                raise ValueError(f"shift {shift.name!r} at {shift.start!r}: give a name and a HH:MM start")
        with environment_errors(self._where), self._writer.begin() as connection:
            connection.execute(delete(ShiftRow))
            for shift in shifts:
                connection.execute(
                    insert(ShiftRow).values(name=shift.name, start_local=shift.start, timezone=shift.timezone)
                )

    # ------------------------------------------------------------------ reading

    def get(self, part_id: str) -> Decision | None:
        """The decision about one part, from any station, or None."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            result = session.execute(_DECISIONS.where(DecisionRow.part_id == part_id)).first()
        return None if result is None else _to_decision(result)

    def find_by_content_hash(self, content_hash: str) -> list[Decision]:
        """This station's decisions about these bytes (a SHA-256 of the file), oldest first.

        The hot folder's duplicate check (``core.sources.dedupe``) asks this; it uses the
        ``ix_decisions_content_hash`` index.
        """
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return []
            query = (
                _DECISIONS.where(DecisionRow.station_id == station_id)
                .where(DecisionRow.content_hash == content_hash)
                .order_by(DecisionRow.created_at, DecisionRow.part_id)
            )
            return [_to_decision(row) for row in session.execute(query)]

    def latest(self, n: int = 50) -> list[Decision]:
        """This station's ``n`` most recent decisions, newest first."""
        return self.find(limit=n)

    def find(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        verdicts: Iterable[Verdict] | None = None,
        score_min: float | None = None,
        score_max: float | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
    ) -> list[Decision]:
        """This station's decisions matching every filter given.

        Args:
            since: Only decisions at or after this time (aware datetime).
            until: Only decisions before this time.
            verdicts: Only these verdicts.
            score_min: Only scores at or above this (a score band's lower edge).
            score_max: Only scores below this (the band's upper edge, excluded).
            limit: At most this many (None: all; mind the memory on a large log).
            newest_first: Order by time, newest first (else oldest first).
        """
        self._check_open()
        if limit is not None and limit <= 0:
            return []
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return []
            newest = (DecisionRow.created_at.desc(), DecisionRow.part_id.desc())
            order = newest if newest_first else (DecisionRow.created_at, DecisionRow.part_id)
            query = _filtered(_DECISIONS, station_id, since, until, verdicts, score_min, score_max).order_by(
                *order
            )
            if limit is not None:
                query = query.limit(limit)
            banded = score_min is not None or score_max is not None
            if banded and newest_first and limit is not None and session.get_bind().dialect.name == "sqlite":
                # A derived table, so that the newest decisions drive the query, not the score index.
                recent = aliased(
                    DecisionRow,
                    _filtered(select(DecisionRow), station_id, since, until, verdicts, None, None)
                    .order_by(*newest)
                    .limit(max(_BAND_PROBE, 10 * limit))
                    .subquery(),
                )
                probe = _decision_columns(recent).order_by(recent.created_at.desc(), recent.part_id.desc())
                if score_min is not None:
                    probe = probe.where(recent.score >= score_min)
                if score_max is not None:
                    probe = probe.where(recent.score < score_max)
                found = [_to_decision(row) for row in session.execute(probe.limit(limit))]
                if len(found) == limit:  # the newest matches all lie among the newest decisions
                    return found
            return [_to_decision(row) for row in session.execute(query)]

    def count(self, verdict: Verdict | None = None) -> int:
        """How many decisions this station has recorded, all or of one verdict."""
        counts = self.counts()
        return sum(counts.values()) if verdict is None else counts[Verdict(verdict)]

    def counts(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[Verdict, int]:
        """This station's decisions per verdict, optionally in a time range; every verdict is a key."""
        self._check_open()
        totals = dict.fromkeys(Verdict, 0)
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return totals
            query = _filtered(
                select(DecisionRow.verdict, func.count()), station_id, since, until, None, None, None
            ).group_by(DecisionRow.verdict)
            for verdict, number in session.execute(query):
                totals[Verdict(verdict)] = int(number)
        return totals

    def counts_per_hour(self, since: datetime, until: datetime) -> list[HourCount]:
        """Decisions per verdict for each UTC hour in ``[since, until)`` that has any, oldest first."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return []
            dialect = session.get_bind().dialect.name
            if dialect == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS.ffffff" UTC text
                hour: Any = func.substr(DecisionRow.created_at, 1, 13)
            else:
                hour = func.date_trunc("hour", func.timezone("UTC", DecisionRow.created_at))
            query = _filtered(
                select(hour.label("hour"), DecisionRow.verdict, func.count()),
                station_id,
                since,
                until,
                None,
                None,
                None,
            ).group_by(hour, DecisionRow.verdict)
            buckets: dict[datetime, dict[Verdict, int]] = {}
            for bucket, verdict, number in session.execute(query):
                start = (
                    datetime.strptime(bucket, "%Y-%m-%d %H") if isinstance(bucket, str) else bucket
                ).replace(tzinfo=UTC)
                buckets.setdefault(start, dict.fromkeys(Verdict, 0))[Verdict(verdict)] = int(number)
        return [
            HourCount(
                hour=start, good=c[Verdict.GOOD], bad=c[Verdict.BAD], not_inspected=c[Verdict.NOT_INSPECTED]
            )
            for start, c in sorted(buckets.items())
        ]

    def records(self, since: datetime, until: datetime) -> Iterator[DecisionRecord]:
        """This station's decisions in ``[since, until)``, oldest first, with model name and newest review.

        Streams: a shift of any length fits in memory.
        """
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return
            reviews = {
                review.part_id: review
                for review in self._reviews(
                    session,
                    select(ReviewRow.id)
                    .join(DecisionRow, ReviewRow.part_id == DecisionRow.part_id)
                    .where(
                        DecisionRow.station_id == station_id,
                        DecisionRow.created_at >= since,
                        DecisionRow.created_at < until,
                    ),
                )
            }  # ordered by seq: the newest review of a part wins
            query = _filtered(
                _DECISIONS.add_columns(DecisionRow.seq, ModelVersion.name),
                station_id,
                since,
                until,
                None,
                None,
                None,
            ).order_by(DecisionRow.created_at, DecisionRow.part_id)
            # Closed even when the caller stops early (a server-side cursor on PostgreSQL).
            with session.execute(query, execution_options={"yield_per": 2000}) as rows:
                for row in rows:
                    decision = _to_decision(row)
                    seq, model_name = row[_DECISION_WIDTH:]
                    yield DecisionRecord(
                        decision=decision,
                        seq=seq,
                        model_name=model_name,
                        review=reviews.get(decision.part_id),
                    )

    def reviews_of(self, part_id: str) -> list[Review]:
        """Every review of one decision, oldest first."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            return self._reviews(session, select(ReviewRow.id).where(ReviewRow.part_id == part_id))

    def threshold_changes(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[ThresholdChange]:
        """This station's threshold changes, oldest first."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
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
                    station=self._station,
                    seq=seq,
                    created_at=at,
                    user=user,
                    old=old,
                    new=new,
                    reason=reason,
                    model_hash=model,
                )
                for seq, at, user, old, new, reason, model in session.execute(query)
            ]

    def stations(self) -> list[str]:
        """Names of every station in the database."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            return list(session.scalars(select(Station.name).order_by(Station.name)))

    # ------------------------------------------------------------------ the hash chain

    def chain_head(self) -> ChainHead:
        """The newest link of this station's chain (seq 0 before anything was recorded)."""
        self._check_open()
        with environment_errors(self._where), self._sessions() as session:
            found = session.execute(
                select(Station.head_seq, Station.head_hash).where(Station.name == self._station)
            ).first()
        return (
            ChainHead(seq=0, hash=GENESIS_HASH) if found is None else ChainHead(seq=found[0], hash=found[1])
        )

    def chain_head_before(self, until: datetime) -> ChainHead:
        """The link of the newest record (decision, threshold change, review) made before ``until``.

        A shift report prints this head: it does not change when later shifts are recorded, and
        ``verify(until_seq=...)`` proves every record up to it.
        """
        self._check_open()
        best = ChainHead(seq=0, hash=GENESIS_HASH)
        with environment_errors(self._where), self._sessions() as session:
            station_id = self._find_station(session)
            if station_id is None:
                return best
            for table in (DecisionRow, ThresholdChangeRow, ReviewRow):
                found = session.execute(
                    select(table.seq, table.row_hash)
                    .where(table.station_id == station_id, table.created_at < until)
                    .order_by(table.created_at.desc(), table.seq.desc())
                    .limit(1)
                ).first()
                if found is not None and found[0] > best.seq:
                    best = ChainHead(seq=found[0], hash=found[1])
        return best

    def verify(self, *, station: str | None = None, until_seq: int | None = None) -> ChainVerification:
        """Walk a station's hash chain (this log's by default) and report the first broken link.

        Raises:
            KeyError: No station of that name.
        """
        self._check_open()
        name = station or self._station
        with environment_errors(self._where), self._engine.connect() as connection:
            station_id = connection.scalar(select(Station.id).where(Station.name == name))
            if station_id is None:
                if station is None:  # this station has recorded nothing yet: an empty chain is whole
                    head = ChainHead(seq=0, hash=GENESIS_HASH)
                    return ChainVerification(station=name, ok=True, records=0, pruned=0, head=head)
                raise KeyError(f"no station {name!r} in the visual log")
            return chain.verify_station(connection, station_id, until_seq=until_seq)

    # ------------------------------------------------------------------ retention

    def prune(
        self,
        policy: RetentionPolicy | None = None,
        *,
        user: str = "retention",
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> RetentionResult:
        """Apply retention to this station: files first, then rows (see ``core.storage.retention``)."""
        from core.storage.retention import RetentionPolicy, apply_retention

        self._check_open()
        return apply_retention(self, policy or RetentionPolicy(), user=user, now=now, dry_run=dry_run)

    # ------------------------------------------------------------------ media

    def load_heatmap(self, decision: Decision) -> np.ndarray | None:
        """The stored heatmap (uint8, H x W), or None when the decision has none.

        A heatmap file that is missing or unreadable (e.g. removed by retention) is logged and
        reported as None: the GUI shows the decision without it rather than failing.
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

    def now(self) -> datetime:
        """The log's clock, UTC (what ``record`` stamps decisions with)."""
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the log's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def _append(
        self,
        station_id: int,
        table: type[DecisionRow | ThresholdChangeRow | ReviewRow],
        values: dict[str, Any],
        link: Callable[[int, str], str],
        *,
        then: Callable[[Connection], None] | None = None,
    ) -> tuple[int, str]:
        """Insert ``values`` as the next link of a station's chain; returns its (seq, hash)."""
        return self._append_many(station_id, table, [(values, link)], then=then)

    def _append_many(
        self,
        station_id: int,
        table: type[DecisionRow | ThresholdChangeRow | ReviewRow],
        rows: Sequence[tuple[dict[str, Any], Callable[[int, str], str]]],
        *,
        then: Callable[[Connection], None] | None = None,
    ) -> tuple[int, str]:
        """Insert ``rows`` as the next links of a station's chain, in one transaction.

        Returns the (seq, hash) of the last. The head moves only if it is still where this log
        saw it: otherwise another writer appended first, and the head is read again. The head in
        memory advances only after the commit, so a failed commit (disk full) leaves it pointing
        at the last committed link.
        """
        for _ in range(_APPEND_ATTEMPTS):
            head = self._heads.get(station_id) or self._read_head(station_id)
            seq, row_hash = head.seq, head.hash
            linked = []
            for values, link in rows:
                seq += 1
                row_hash = link(seq, row_hash)
                linked.append({**values, "seq": seq, "row_hash": row_hash})
            try:
                with self._writer.begin() as connection:
                    moved = connection.execute(
                        update(Station)
                        .where(Station.id == station_id, Station.head_seq == head.seq)
                        .values(head_seq=seq, head_hash=row_hash)
                    ).rowcount
                    if moved != 1:
                        raise _StaleHead
                    if len(linked) == 1:
                        connection.execute(insert(table).values(**linked[0]))
                    else:
                        connection.execute(insert(table), linked)
                    if then is not None:
                        then(connection)
            except _StaleHead:
                self._heads.pop(station_id, None)
                continue
            except BaseException:
                self._heads.pop(station_id, None)  # the commit may or may not have happened
                raise
            self._heads[station_id] = ChainHead(seq=seq, hash=row_hash)
            return seq, row_hash
        raise StorageError("locked", self._where, "other writers kept appending to this station's chain")

    def _read_head(self, station_id: int) -> ChainHead:
        with self._engine.connect() as connection:
            seq, head_hash = connection.execute(
                select(Station.head_seq, Station.head_hash).where(Station.id == station_id)
            ).one()
        return ChainHead(seq=seq, hash=head_hash)

    def _supervisor_id(self, name: str, action: str) -> int:
        with self._sessions() as session:
            found = session.execute(
                select(UserRow.id, UserRow.active, RoleRow.name)
                .join(RoleRow, UserRow.role_id == RoleRow.id)
                .where(UserRow.name == name)
            ).first()
        if found is None:
            raise NotAllowedError(f"unknown user {name!r} may not {action}; register them first")
        user_id, active, role = found
        if not active:
            raise NotAllowedError(f"user {name!r} is deactivated and may not {action}")
        if Role(role) not in SUPERVISING_ROLES:
            raise NotAllowedError(f"user {name!r} is an {role}; only a supervisor or admin may {action}")
        return int(user_id)

    def _reviews(self, session: Session, ids: Select[Any]) -> list[Review]:
        r = ReviewRow
        query = (
            select(
                r.seq, r.created_at, r.part_id, UserRow.name, r.verdict, r.outcome, r.comment, Station.name
            )
            .join(UserRow, r.user_id == UserRow.id)
            .join(Station, r.station_id == Station.id)
            .where(r.id.in_(ids.scalar_subquery()))
            .order_by(r.seq)
        )
        return [
            Review(
                station=station,
                seq=seq,
                created_at=at,
                part_id=part_id,
                user=user,
                verdict=Verdict(verdict),
                outcome=ReviewOutcome(outcome),
                comment=comment,
            )
            for seq, at, part_id, user, verdict, outcome, comment, station in session.execute(query)
        ]

    def _exists(self, part_id: str) -> bool:
        with self._sessions() as session:
            return (
                session.scalar(select(DecisionRow.part_id).where(DecisionRow.part_id == part_id)) is not None
            )

    def _find_station_id(self, connection: Connection) -> int | None:
        if self._station_id is None:
            self._station_id = connection.scalar(select(Station.id).where(Station.name == self._station))
        return self._station_id

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

    def _ensure_model(self, model_hash: str, model_name: str | None, first_seen: datetime) -> int:
        model_id = self._model_ids.get(model_hash)
        if model_id is None:
            values = {"hash": model_hash, "name": model_name, "created_at": first_seen}
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
        with self._write_sessions() as session:
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

    def _first_existing(self, part_ids: Sequence[str]) -> str | None:
        """The first of ``part_ids`` that already has a row, or None."""
        if len(part_ids) == 1:
            return part_ids[0] if self._exists(part_ids[0]) else None
        with self._sessions() as session:
            found = set(session.scalars(select(DecisionRow.part_id).where(DecisionRow.part_id.in_(part_ids))))
        return next((p for p in part_ids if p in found), None)

    def _discard_orphans(self, part_ids: Sequence[str], written: list[Path]) -> None:
        """Remove the media files of rows that were not committed (frees space when disk is full)."""
        if not written:
            return
        try:
            if self._first_existing(part_ids) is not None:  # committed after all: the files are the rows'
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


def _decision_columns(d: Any) -> Select[Any]:
    """Decisions (of ``DecisionRow`` or an alias of it) with their station's name and model's hash."""
    return (
        select(
            d.part_id,
            Station.name,
            d.source_ref,
            d.created_at,
            d.content_hash,
            d.verdict,
            d.score,
            d.threshold,
            d.reason,
            d.latency_ms,
            ModelVersion.hash,
            d.image_path,
            d.heatmap_path,
        )
        .join(Station, d.station_id == Station.id)
        .outerjoin(ModelVersion, d.model_version_id == ModelVersion.id)
    )


# As plain columns: loading ORM objects would cost ten times more per row. Built once.
_DECISIONS = _decision_columns(DecisionRow)
_DECISION_WIDTH = 13

# A score band, newest first, on SQLite: first look among this many newest decisions (the time
# index); only a band too sparse to fill the page there falls back to the score index. SQLite's
# planner cannot tell a wide band from a narrow one and would sort the whole band.
_BAND_PROBE = 5000


def _filtered(
    query: Any,
    station_id: int,
    since: datetime | None,
    until: datetime | None,
    verdicts: Iterable[Verdict] | None,
    score_min: float | None,
    score_max: float | None,
) -> Any:
    query = query.where(DecisionRow.station_id == station_id)
    if since is not None:
        query = query.where(DecisionRow.created_at >= since)
    if until is not None:
        query = query.where(DecisionRow.created_at < until)
    if verdicts is not None:
        query = query.where(DecisionRow.verdict.in_([Verdict(v).value for v in verdicts]))
    if score_min is not None:
        query = query.where(DecisionRow.score >= score_min)
    if score_max is not None:
        query = query.where(DecisionRow.score < score_max)
    return query


def _to_decision(row: Sequence[Any]) -> Decision:
    (part_id, station, source_ref, created_at, content_hash, verdict, score, threshold, reason,
     latency_ms, model_hash, image_path, heatmap_path) = row[:_DECISION_WIDTH]  # fmt: skip
    return Decision(
        part_id=part_id,
        station=station,
        source_ref=source_ref,
        created_at=created_at,
        content_hash=content_hash,
        verdict=Verdict(verdict),
        score=score,
        threshold=threshold,
        reason=reason,
        latency_ms=latency_ms,
        model_hash=model_hash,
        image_path=image_path,
        heatmap_path=heatmap_path,
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
