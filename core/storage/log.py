"""The visual log: every decision, with the image and heatmap the operator saw.

Rows go to SQLite (one station) or PostgreSQL (several stations); images and heatmaps go to
files under the media root, and the rows hold paths relative to it. ``VisualLog`` is the one
face of it that the station, the GUI, the reports and the command line use; its body is split
by concern, each module working on the shared ``LogContext``:

- ``writing``: recording decisions (media first, then the rows, see ``media``);
- ``heads``: the station's hash chain, appended under its head and verified (``chain``);
- ``queries``: decisions read back, counted and streamed for reports;
- ``reviews``, ``thresholds``, ``users``, ``model_versions``, ``shifts``: the other records;
- ``retention`` and ``statistics``: upkeep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
from sqlalchemy import Engine

import core.storage.alarms as alarm_log
import core.storage.anchors as anchors
import core.storage.auth as auth
import core.storage.heads as heads
import core.storage.history as history
import core.storage.media_check as media_check
import core.storage.model_versions as model_versions
import core.storage.queries as queries
import core.storage.reviews as reviews
import core.storage.score_queries as score_queries
import core.storage.shifts as shift_plans
import core.storage.thresholds as thresholds
import core.storage.trend_queries as trend_queries
import core.storage.users as users
import core.storage.writing as writing
from core.common import paths
from core.common.types import Decision, Inspection, Part, Verdict
from core.storage.alarms import AlarmEvent, AlarmRecord
from core.storage.auth import Actor
from core.storage.context import LogContext, open_context, utc_now
from core.storage.history import HistoryPage, HistoryQuery
from core.storage.media import load_heatmap, media_path
from core.storage.orphans import clean_orphans
from core.storage.records import (
    ChainHead,
    ChainVerification,
    DecisionRecord,
    HourCount,
    MediaVerification,
    ModelInfo,
    Review,
    Role,
    ShiftDefinition,
    ThresholdChange,
    User,
)
from core.storage.retention import RetentionPolicy, RetentionResult, apply_retention
from core.storage.score_queries import BandPart, ScoreSample
from core.storage.statistics import refresh_statistics
from core.storage.trend_queries import Trend
from core.storage.writing import Entry

__all__ = ["Entry", "VisualLog"]


class VisualLog:
    """Append-only record of decisions, with their images and heatmaps on disk.

    One writer: a log is made and used on one thread (the inspection worker). Other threads or
    processes that only read open their own ``VisualLog`` on the same URL. Queries other than
    ``get`` are scoped to this log's station, which matters only when several stations share one
    PostgreSQL database. Opening a log brings its schema to the newest revision (a SQLite file is
    backed up first, see ``core.storage.migrate``) and refreshes SQLite's planner statistics when
    they are stale (see ``core.storage.statistics``), as closing it does.

    Args:
        url: SQLAlchemy URL of the database; defaults to ``core.common.paths.default_db_url()``.
        media_root: Folder of images and heatmaps; defaults to ``core.common.paths.media_root()``.
        station: Name of the station whose decisions this log records.
        clock: Returns the current time, UTC-aware; for tests and replays.

    Attributes:
        backup_before_upgrade: The copy of the SQLite file taken before its schema was upgraded
            on opening, or None.
        orphans_removed: Media files no decision names, older than ten minutes, that opening
            removed (see ``core.storage.orphans``).

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
        self._context, self.backup_before_upgrade = open_context(
            url if url is not None else paths.default_db_url(),
            media_root=Path(media_root) if media_root is not None else paths.media_root(),
            station=station,
            clock=clock or utc_now,
        )
        refresh_statistics(self._context.engine)
        # Files a crash left between writing media and committing their rows.
        self.orphans_removed = clean_orphans(self._context)

    # ------------------------------------------------------------------ properties

    @property
    def engine(self) -> Engine:
        """The engine, for maintenance and tests; ORM rows still stay inside ``core.storage``."""
        return self._context.engine

    @property
    def url(self) -> str:
        """The database URL, password included (for maintenance tools such as backups)."""
        return self._context.url

    @property
    def media_root(self) -> Path:
        """The folder of images and heatmaps; decisions name their files relative to it."""
        return self._context.media_root

    @property
    def station(self) -> str:
        """The name of the station whose decisions this log records."""
        return self._context.station

    def now(self) -> datetime:
        """The log's clock, UTC (what ``record`` stamps decisions with)."""
        return self._context.now()

    def _open(self) -> LogContext:
        self._context.check_open()
        return self._context

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
        return writing.record_many(self._open(), entries, model_hash, model_name)

    def record_threshold_change(
        self,
        old: float | None,
        new: float,
        *,
        actor: Actor,
        reason: str,
        model_hash: str | None = None,
        model_name: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> ThresholdChange:
        """Record that this station's threshold changed; the next decisions carry ``new``.

        Args:
            old: The threshold in force until now; None when the station had none recorded.
            new: The threshold in force from now on, 0..1.
            actor: Who changed it, logged in (``authenticate``) with a role that may; the
                station's own start-up setting is ``auth.system_actor``'s.
            reason: Why, in the user's words; required.
            model_hash: The model the threshold applies to (SHA-256 hex), when known.
            model_name: A readable name for that model.
            evidence: The what-if figures shown before the change (JSON-able), kept with it.

        Raises:
            NotAllowedError: ``actor`` may not change a threshold; the refusal is recorded.
            ValueError: A threshold outside 0..1 or an empty reason.
            StorageError: As for ``record``; nothing is recorded.
        """
        return thresholds.record_threshold_change(
            self._open(), old, new, actor=actor, reason=reason, model_hash=model_hash, model_name=model_name,
            evidence=dict(evidence) if evidence is not None else None,
        )  # fmt: skip

    def current_threshold(self) -> float | None:
        """This station's threshold as last recorded (cheap: the running station asks 4 times a second)."""
        return thresholds.current_threshold(self._open())

    def review(self, part_id: str, *, verdict: Verdict, actor: Actor, comment: str | None = None) -> Review:
        """Record a supervisor's confirmation or override of a decision, as a new linked row.

        The decision itself is never changed. A review joins the chain of the decision's
        station (which may be another station sharing the database).

        Args:
            part_id: The decision reviewed.
            verdict: What the supervisor says the part is (good or bad). The same verdict as the
                model's confirms it; another overrides it.
            actor: A logged-in user whose role may review.
            comment: Optional note.

        Raises:
            KeyError: No decision with this part id.
            NotAllowedError: ``actor`` may not review; the refusal is recorded.
            ValueError: ``verdict`` is not good or bad.
            StorageError: As for ``record``.
        """
        return reviews.review(self._open(), part_id, verdict, actor, comment)

    def keep(self, part_id: str, *, actor: Actor, reason: str) -> None:
        """Mark a decision so that retention never removes it (nor its image and heatmap).

        Raises:
            KeyError: No decision with this part id.
            NotAllowedError: ``actor`` may not keep decisions; the refusal is recorded.
            ValueError: An empty reason.
        """
        reviews.keep(self._open(), part_id, actor, reason)

    # ------------------------------------------------------------------ users, models, shifts

    def add_user(
        self,
        name: str,
        *,
        role: Role | str,
        display_name: str | None = None,
        password: str | None = None,
        actor: Actor | None = None,
    ) -> User:
        """Register a user (never removed); ``actor`` None only for the first admin (``users.add_user``)."""
        return users.add_user(self._open(), name, role, display_name, password=password, actor=actor)

    def set_user_active(self, name: str, active: bool, *, actor: Actor) -> None:
        """Deactivate (or reactivate) a user; their past records keep naming them (``users``)."""
        users.set_user_active(self._open(), name, active, actor)

    def authenticate(self, name: str, password: str) -> Actor:
        """Check a password; the ``Actor`` returned is what record-changing calls take.

        Raises:
            NotAllowedError: Wrong name or password (recorded; never says which).
        """
        return auth.authenticate(self._open(), name, password)

    @property
    def access(self) -> auth.Access:
        """Passwords, the first-run check, and the record of log-ins and refusals."""
        return auth.Access(self._open())

    def users(self) -> list[User]:
        """Every registered user, by name."""
        return users.users(self._open())

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
        return model_versions.register_model(self._open(), model_hash, name, metadata)

    def models(self) -> list[ModelInfo]:
        """Every model version the log knows, oldest first."""
        return model_versions.models(self._open())

    def shift_plan(self) -> list[ShiftDefinition]:
        """The shifts of the plan in order of their start time; empty when none is configured."""
        return shift_plans.shift_plan(self._open())

    def set_shift_plan(self, shifts: Sequence[ShiftDefinition], *, actor: Actor) -> None:
        """Replace the shift plan (configuration; reports of past shifts use the plan given to them)."""
        context = self._open()
        auth.require(context, actor, auth.Permission.SHIFTS)
        shift_plans.set_shift_plan(context, shifts)

    # ------------------------------------------------------------------ reading

    def get(self, part_id: str) -> Decision | None:
        """The decision about one part, from any station, or None."""
        return queries.get(self._open(), part_id)

    def find_by_content_hash(self, content_hash: str) -> list[Decision]:
        """This station's decisions about these bytes (a SHA-256 of the file), oldest first.

        The hot folder's duplicate check (``core.sources.dedupe``) asks this; it uses the
        ``ix_decisions_content_hash`` index.
        """
        return queries.find_by_content_hash(self._open(), content_hash)

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
        return queries.find(
            self._open(),
            since=since,
            until=until,
            verdicts=verdicts,
            score_min=score_min,
            score_max=score_max,
            limit=limit,
            newest_first=newest_first,
        )

    def count(self, verdict: Verdict | None = None) -> int:
        """How many decisions this station has recorded, all or of one verdict."""
        counts = self.counts()
        return sum(counts.values()) if verdict is None else counts[Verdict(verdict)]

    def counts(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[Verdict, int]:
        """This station's decisions per verdict, optionally in a time range; every verdict is a key."""
        return queries.counts(self._open(), since, until)

    def counts_per_hour(self, since: datetime, until: datetime) -> list[HourCount]:
        """Decisions per verdict for each UTC hour in ``[since, until)`` that has any, oldest first."""
        return queries.counts_per_hour(self._open(), since, until)

    def trend(self, since: datetime, until: datetime, *, bucket_s: int = 300, score_bins: int = 20) -> Trend:
        """This station's verdicts and latency per ``bucket_s`` interval and its score distribution
        over ``[since, until)``, grouped in the database (see ``core.storage.trend_queries``)."""
        return trend_queries.trend(self._open(), since, until, bucket_s=bucket_s, score_bins=score_bins)

    def records(self, since: datetime, until: datetime) -> Iterator[DecisionRecord]:
        """This station's decisions in ``[since, until)``, oldest first, with model name and newest review.

        Streams: a shift of any length fits in memory.
        """
        return queries.records(self._open(), since, until)

    def score_sample(self, since: datetime, until: datetime) -> ScoreSample:
        """Scores and reviewed truth of this station's inspected parts in ``[since, until)`` (``score_queries``)."""
        return score_queries.score_sample(self._open(), since, until)

    def parts_in_band(
        self, since: datetime, until: datetime, low: float, high: float, *, limit: int
    ) -> list[BandPart]:
        """This station's parts in ``[since, until)`` scoring in ``[low, high)``, oldest first (``score_queries``)."""
        return score_queries.parts_in_band(self._open(), since, until, low, high, limit)

    def reviews_of(self, part_id: str) -> list[Review]:
        """Every review of one decision, oldest first."""
        return reviews.reviews_of(self._open(), part_id)

    def threshold_changes(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[ThresholdChange]:
        """This station's threshold changes, oldest first."""
        return thresholds.threshold_changes(self._open(), since, until)

    def stations(self) -> list[str]:
        """Names of every station in the database."""
        return queries.stations(self._open())

    def history(self, query: HistoryQuery, **where: Any) -> HistoryPage:
        """A keyset page of decisions of every station matching ``query``, in its order.

        ``where``: ``after=``/``before=`` a ``HistoryCursor`` of a page shown, or ``from_end=True``
        for the last page; ``limit=`` rows (default 50). See ``core.storage.history``.
        """
        return history.page(self._open(), query, **where)

    def history_count(self, query: HistoryQuery) -> int:
        """How many decisions of every station match ``query``."""
        return history.count(self._open(), query)

    def record_alarm(self, kind: str, event: AlarmEvent | str, message: str, **more: Any) -> AlarmRecord:
        """Append an alarm raised or acknowledged (``user=``, ``raised_at=``, ``at=``); see ``alarms``."""
        return alarm_log.record_alarm(self._open(), kind=kind, event=event, message=message, **more)

    def alarms(self, *, since: datetime | None = None, until: datetime | None = None) -> list[AlarmRecord]:
        """This station's alarm events in ``[since, until)``, oldest first."""
        return alarm_log.alarms(self._open(), since=since, until=until)

    # ------------------------------------------------------------------ the hash chain

    def chain_head(self) -> ChainHead:
        """The newest link of this station's chain (seq 0 before anything was recorded)."""
        return heads.chain_head(self._open())

    def chain_head_before(self, until: datetime) -> ChainHead:
        """The link of the newest record (decision, threshold change, review) made before ``until``.

        A shift report prints this head: it does not change when later shifts are recorded, and
        ``verify(until_seq=...)`` proves every record up to it.
        """
        return heads.chain_head_before(self._open(), until)

    def verify(self, *, station: str | None = None, until_seq: int | None = None) -> ChainVerification:
        """Walk a station's hash chain (this log's by default) and report the first broken link.

        Raises:
            KeyError: No station of that name.
        """
        return heads.verify(self._open(), station, until_seq)

    def check_anchor(self, head: ChainHead, *, station: str | None = None) -> str | None:
        """Why a station's chain (this log's by default) no longer holds a head written down
        earlier (a shift report's, a backup's), or None when it does (see ``core.storage.anchors``).

        Raises:
            KeyError: No station of that name.
        """
        return anchors.check_anchor(self._open(), station or self.station, head)

    def verify_media(self, *, station: str | None = None) -> MediaVerification:
        """Re-hash a station's media files against the hashes in its chain (see ``media_check``).

        Raises:
            KeyError: No station of that name.
        """
        return media_check.verify_media(self._open(), station)

    # ------------------------------------------------------------------ upkeep

    def prune(
        self,
        policy: RetentionPolicy | None = None,
        *,
        actor: Actor | None = None,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> RetentionResult:
        """Apply retention to this station: files first, then rows (see ``core.storage.retention``).

        ``actor`` None: the station's own (recorded as ``retention``). A run that removed decisions
        refreshes the planner statistics, which a large removal leaves stale.
        """
        context = self._open()
        if not dry_run:
            auth.require(context, actor or auth.system_actor(context), auth.Permission.RETENTION)
        user = actor.name if actor is not None else "retention"
        result = apply_retention(context, policy or RetentionPolicy(), user=user, now=now, dry_run=dry_run)
        if result.decisions and not result.dry_run:
            refresh_statistics(context.engine)
        return result

    # ------------------------------------------------------------------ media

    def load_heatmap(self, decision: Decision) -> np.ndarray | None:
        """The stored heatmap (uint8, H x W), or None when the decision has none.

        A heatmap file that is missing or unreadable (e.g. removed by retention) is logged and
        reported as None: the GUI shows the decision without it rather than failing.
        """
        if decision.heatmap_path is None:
            return None
        return load_heatmap(self.media_path(decision.heatmap_path), decision.part_id)

    def media_path(self, relative: str) -> Path:
        """The absolute path of a media file named in a decision.

        Raises:
            ValueError: ``relative`` is absolute or leaves the media root.
        """
        return media_path(self._context.media_root, relative)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Refresh stale planner statistics and close every connection.

        The log cannot be used afterwards; closing twice is fine.
        """
        context = self._context
        if not context.closed:
            context.closed = True
            try:
                refresh_statistics(context.engine)
            finally:
                context.engine.dispose()

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
        return f"VisualLog({self._context.where!r}, station={self._context.station!r})"
