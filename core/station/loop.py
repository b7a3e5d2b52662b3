"""The station's one run loop: start, back-off, restart, source status and alarms, as events.

``StationLoop.run`` is called on the thread that is to own the runtime (the headless main
thread, the GUI's worker ``QThread``): the factory builds the runtime there, because SQLite
connections, CUDA contexts and camera handles belong to the thread that made them, and every
step and the final ``close`` happen there too. Subscribers get typed events (``core.station.events``)
on that thread, in order.

What the loop does about failures:

- a ``StorageError`` from a step (disk full, database locked): the part stayed with its source;
  the runtime is kept, ``AlarmRaised(STORAGE)`` is emitted and the step is tried again after a
  back-off; the first committed part after it clears the alarm;
- any other error, from the factory or a step: ``AlarmRaised(STATION)``, the runtime is closed
  and built again after a back-off; a successful build clears the alarm;
- the source going offline (its status): ``SourceStatusChanged`` and ``AlarmRaised(SOURCE)``;
  back online: ``SourceStatusChanged`` and ``AlarmCleared(SOURCE)``;
- the source warning while it works (``SourceStatus.warning``: a run of duplicate files, files
  that cannot leave the inbox): ``AlarmRaised(SOURCE_WARNING)`` with the warning, raised again
  when its text changes; ``AlarmCleared(SOURCE_WARNING)`` once the source has no warning.

What the loop watches besides (each alarm cleared when its cause is gone):

- no part for ``expected_part_interval_s`` while the source is online: ``AlarmRaised(NO_PARTS)``;
- the free space of the log's media folder (and SQLite file) below ``disk_floor_mb``:
  ``AlarmRaised(DISK)``, checked every ``disk_check_s``;
- ``bad_run_length`` bad parts in a row: ``AlarmRaised(BAD_RUN)``, cleared by a good part.

Every alarm carries the operator's words (``plain``, ``fix``: ``core.station.alarm_words``), and
is recorded in the runtime's visual log when it has one (``runtime.log``; an alarm raised while
no log is reachable is recorded, with its own time, once one is). ``acknowledge`` (any thread)
records the operator's acknowledgement there too and emits ``AlarmAcknowledged``.

Back-off starts at ``backoff_first_s`` and doubles up to ``backoff_max_s``; a committed part
resets it. ``stop`` (thread-safe) is seen within ``step_timeout_s`` or 0.2 s, back-off included;
the runtime then finishes the parts in flight, commits them and closes.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core.common.types import InspectedPart, Verdict
from core.sources.base import SourceStatus
from core.station.alarm_words import words_for, words_for_failure
from core.station.events import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmKind,
    AlarmRaised,
    PartInspected,
    SourceStatusChanged,
    StationEvent,
    StationInfo,
    StationStarted,
    StationStopped,
)

if TYPE_CHECKING:
    from core.station.config import StationConfig

log = logging.getLogger(__name__)

STOP_CHECK_S = 0.2  # the longest the loop goes without looking at the stop request
RECORD_RETRY_S = 5.0  # alarm rows that could not be written are tried again this often
MAX_PENDING_RECORDS = 200  # alarm rows kept while no log is reachable; the oldest go first

Subscriber = Callable[[StationEvent], None]


@runtime_checkable
class LoopRuntime(Protocol):
    """What the loop needs from a runtime (``StationRuntime`` is the real one)."""

    listeners: list[Callable[[InspectedPart], None]]
    max_parts: int | None
    parts_done: int

    @property
    def finished(self) -> bool:
        """No further part will come (``max_parts`` done, or the source ended)."""
        ...

    def info(self) -> StationInfo: ...

    def process_next(self, timeout_s: float) -> InspectedPart | None: ...

    def poll_status(self, *, force: bool = False) -> SourceStatus | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopSettings:
    """How the loop paces itself (``StationConfig`` holds the same fields)."""

    backoff_first_s: float = 0.5
    backoff_max_s: float = 10.0
    status_poll_s: float = 0.2
    step_timeout_s: float = 0.1  # one process_next call waits this long for a part at most
    max_parts: int | None = None  # stop after this many committed parts, over every rebuild
    expected_part_interval_s: float = 60.0  # "no parts" alarm after this long without one; 0: off
    bad_run_length: int = 5  # alarm after this many bad parts in a row; 0: off
    disk_floor_mb: float = 500.0  # alarm when the log's disk has less free space; 0: off
    disk_check_s: float = 10.0

    @classmethod
    def from_config(cls, config: StationConfig) -> LoopSettings:
        return cls(
            backoff_first_s=config.backoff_first_s,
            backoff_max_s=config.backoff_max_s,
            status_poll_s=config.status_poll_s,
            max_parts=config.max_parts,
            expected_part_interval_s=config.expected_part_interval_s,
            bad_run_length=config.bad_run_length,
            disk_floor_mb=config.disk_floor_mb,
        )


def next_backoff_s(previous_s: float | None, *, first_s: float, max_s: float) -> float:
    """The wait before the next try: ``first_s``, then doubling, capped at ``max_s``."""
    return first_s if previous_s is None else min(previous_s * 2.0, max_s)


def describe_error(exc: BaseException) -> str:
    """A one-line message an operator can read (the traceback goes to the log)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class StationLoop:
    """Runs a station until stopped, rebuilding and retrying as needed; emits events.

    Args:
        factory: Builds a runtime; called on the thread that calls ``run`` (again after a failure).
        settings: Back-off, status polling, step time-out and the number of parts to do.
        fatal_errors: Errors from the factory that no retry can mend (a refused model bundle on
            the command line): ``run`` emits ``StationStopped`` and raises them.
    """

    def __init__(
        self,
        factory: Callable[[], LoopRuntime],
        *,
        settings: LoopSettings | None = None,
        fatal_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._factory = factory
        self.settings = settings or LoopSettings()
        self._fatal = fatal_errors
        self._stop = threading.Event()
        self._subscribers: list[Subscriber] = []
        self._runtime: LoopRuntime | None = None
        self._alarms: set[AlarmKind] = set()
        self._last_status: SourceStatus | None = None
        self._warning = ""  # the source's warning raised as an alarm, "" when none
        self._done_before = 0  # parts committed by runtimes already closed
        self._backoff_s: float | None = None
        self._last_part_at = time.monotonic()
        self._bad_run = 0
        self._disk_checked_at = float("-inf")
        self._raised: dict[AlarmKind, tuple[str, datetime]] = {}  # plain words and time, for acks
        self._acks: queue.SimpleQueue[tuple[AlarmKind, str]] = queue.SimpleQueue()
        self._pending: list[dict[str, object]] = []  # alarm rows not written yet
        self._record_failed_at = float("-inf")

    # -- any thread ------------------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with every event (on the loop's thread). Subscribe before ``run``."""
        self._subscribers.append(subscriber)

    def stop(self) -> None:
        """Ask the loop to end: parts in flight are finished and committed. Returns at once."""
        self._stop.set()

    def acknowledge(self, kind: AlarmKind, user: str = "operator") -> None:
        """The operator acknowledged the alarm of ``kind``: record it (on the loop's thread).

        Returns at once; ``AlarmAcknowledged`` follows once it is recorded (or could not be).
        """
        self._acks.put((AlarmKind(kind), user.strip() or "operator"))

    def threshold_changed(self) -> None:
        """A threshold was recorded in the log: the runtime reads it before its next part.

        Any thread; a runtime without a threshold to read ignores it.
        """
        runtime = self._runtime
        notify = getattr(runtime, "threshold_changed", None)
        if notify is not None:
            notify()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def parts_done(self) -> int:
        runtime = self._runtime
        return self._done_before + (runtime.parts_done if runtime is not None else 0)

    # -- the loop's thread -----------------------------------------------------------------------
    def run(self) -> int:
        """Run until ``stop``, ``max_parts`` or the source's end; returns the parts committed.

        Raises:
            One of ``fatal_errors``, from the factory.
        """
        from core.storage.errors import StorageError

        finished = False
        try:
            while not self._stop.is_set():
                runtime = self._runtime or self._start()
                if runtime is None:
                    continue
                if self._limit_reached() or runtime.finished:
                    finished = True
                    break
                try:
                    runtime.process_next(timeout_s=min(self.settings.step_timeout_s, STOP_CHECK_S))
                except StorageError as exc:
                    self._raise_with_backoff(
                        AlarmKind.STORAGE, f"Storage unavailable: {describe_error(exc)}", exc=exc
                    )
                    log.error("storage unavailable: %s", exc)
                    self._wait_backoff()
                    continue
                except Exception as exc:
                    log.exception("inspecting a part failed")
                    self._raise_with_backoff(
                        AlarmKind.STATION, f"Inspection failed: {describe_error(exc)}", "restarting", exc=exc
                    )
                    self._close_runtime()
                    self._wait_backoff()
                    continue
                self._poll_status()
                self._watch(runtime)
        finally:
            self._drain_acks()
            self._close_runtime()
            self._emit(StationStopped(parts_done=self._done_before, finished=finished))
        return self._done_before

    def _start(self) -> LoopRuntime | None:
        runtime: LoopRuntime | None = None
        try:
            runtime = self._factory()
            if self.settings.max_parts is not None:
                runtime.max_parts = max(0, self.settings.max_parts - self._done_before)
            info = runtime.info()
        except Exception as exc:
            if runtime is not None:  # built, but unusable: do not leak its handles
                self._close_quietly(runtime)
            if isinstance(exc, self._fatal):
                raise
            log.exception("building the station runtime failed")
            self._raise_with_backoff(
                AlarmKind.STATION, f"Station could not start: {describe_error(exc)}", exc=exc
            )
            self._wait_backoff()
            return None
        runtime.listeners.append(self._on_committed)
        self._runtime = runtime
        self._clear(AlarmKind.STATION)
        visual_log = getattr(runtime, "log", None)
        if info.log_url is None and visual_log is not None and hasattr(visual_log, "url"):
            info = dataclasses.replace(info, log_url=visual_log.url, media_root=str(visual_log.media_root))
        self._last_part_at = time.monotonic()
        self._emit(StationStarted(info=info))
        self._last_status = None  # a new source: its first state is news
        self._poll_status(force=True)
        return runtime

    def _on_committed(self, item: InspectedPart) -> None:
        self._backoff_s = None
        self._last_part_at = time.monotonic()
        self._clear(AlarmKind.STORAGE)  # a row went in: the storage is back
        self._clear(AlarmKind.NO_PARTS)
        self._emit(PartInspected(item=item))
        verdict = item.decision.verdict
        if verdict is Verdict.BAD:
            self._bad_run += 1
            length = self.settings.bad_run_length
            if length > 0 and self._bad_run == length:
                self._raise(
                    AlarmKind.BAD_RUN, f"{length} bad parts in a row (the last: {item.decision.part_id})"
                )
        elif verdict is Verdict.GOOD:
            self._bad_run = 0
            self._clear(AlarmKind.BAD_RUN)

    def _watch(self, runtime: LoopRuntime) -> None:
        """After a step: no parts for too long, the disk, acknowledgements, unwritten alarm rows."""
        now = time.monotonic()
        interval = self.settings.expected_part_interval_s
        online = self._last_status is None or self._last_status.online
        if (
            interval > 0
            and online
            and AlarmKind.NO_PARTS not in self._alarms
            and now - self._last_part_at > interval
        ):
            self._raise(AlarmKind.NO_PARTS, f"no parts for {interval:g} s")
        if self.settings.disk_floor_mb > 0 and now - self._disk_checked_at >= self.settings.disk_check_s:
            self._disk_checked_at = now
            self._check_disk(runtime)
        self._drain_acks()
        if self._pending and now - self._record_failed_at >= RECORD_RETRY_S:
            self._flush_records()

    def _check_disk(self, runtime: LoopRuntime) -> None:
        floor_mb = self.settings.disk_floor_mb
        lowest: tuple[float, Path] | None = None
        for folder in _log_folders(runtime):
            try:
                free_mb = shutil.disk_usage(folder).free / 1e6
            except OSError:
                continue
            if lowest is None or free_mb < lowest[0]:
                lowest = (free_mb, folder)
        if lowest is not None and lowest[0] < floor_mb:
            if AlarmKind.DISK not in self._alarms:
                self._raise(
                    AlarmKind.DISK,
                    f"disk nearly full: {lowest[0]:.0f} MB free at {lowest[1]} (floor {floor_mb:g} MB)",
                )
        else:
            self._clear(AlarmKind.DISK)

    def _drain_acks(self) -> None:
        while True:
            try:
                kind, user = self._acks.get_nowait()
            except queue.Empty:
                return
            plain, raised_at = self._raised.get(kind, (words_for(kind)[0], None))
            self._record(kind, "acknowledged", plain, user=user, raised_at=raised_at)
            recorded = self._flush_records()
            self._emit(AlarmAcknowledged(kind=kind, user=user, message=plain, recorded=recorded))

    def _record(self, kind: AlarmKind, event: str, message: str, **more: object) -> None:
        self._pending.append(
            {"kind": kind.value, "event": event, "message": message, "at": _utc_now(), **more}
        )
        del self._pending[:-MAX_PENDING_RECORDS]

    def _flush_records(self) -> bool:
        """Write the alarm rows waiting; True when none is left waiting."""
        visual_log = getattr(self._runtime, "log", None)
        record = getattr(visual_log, "record_alarm", None)
        if record is None:
            return not self._pending
        while self._pending:
            row = dict(self._pending[0])
            try:
                record(row.pop("kind"), row.pop("event"), row.pop("message"), **row)
            except Exception:
                log.warning("an alarm could not be recorded in the visual log yet", exc_info=True)
                self._record_failed_at = time.monotonic()
                return False
            self._pending.pop(0)
        return True

    def _limit_reached(self) -> bool:
        limit = self.settings.max_parts
        return limit is not None and self.parts_done >= limit

    def _poll_status(self, *, force: bool = False) -> None:
        runtime = self._runtime
        if runtime is None:
            return
        try:
            status = runtime.poll_status(force=force)
        except Exception:
            log.exception("reading the source's status failed")
            return
        if status is None:
            return
        self._warn(status.warning)
        if self._last_status is not None and status.state == self._last_status.state:
            return
        self._last_status = status
        self._emit(SourceStatusChanged(status=status))
        if status.online:
            if AlarmKind.SOURCE in self._alarms:
                self._last_part_at = time.monotonic()  # "no parts" counts from the reconnection
            self._clear(AlarmKind.SOURCE)
        elif not status.finished:
            self._clear(AlarmKind.NO_PARTS)  # the source alarm says more
            self._raise(AlarmKind.SOURCE, f"source OFFLINE: {status.message}")

    def _warn(self, warning: str) -> None:
        """Raise, re-raise with a new text, or clear the source's warning alarm."""
        if warning and warning != self._warning:
            self._raise(AlarmKind.SOURCE_WARNING, f"source warning: {warning}")
        elif not warning:
            self._clear(AlarmKind.SOURCE_WARNING)
        self._warning = warning

    def _raise_with_backoff(
        self, kind: AlarmKind, message: str, retry: str = "retrying", *, exc: BaseException | None = None
    ) -> None:
        s = self.settings
        self._backoff_s = next_backoff_s(self._backoff_s, first_s=s.backoff_first_s, max_s=s.backoff_max_s)
        self._raise(
            kind, f"{message} ({retry} in {self._backoff_s:.1f} s)", retry_in_s=self._backoff_s, exc=exc
        )

    def _raise(
        self,
        kind: AlarmKind,
        message: str,
        *,
        retry_in_s: float | None = None,
        exc: BaseException | None = None,
    ) -> None:
        """Emit an alarm with the operator's words; record it when it is new (not a re-raise)."""
        plain, fix = words_for(kind) if exc is None else words_for_failure(kind, exc)
        if kind not in self._alarms:
            self._raised[kind] = (plain, _utc_now())
            self._record(kind, "raised", f"{plain} ({message})")
        self._alarms.add(kind)
        self._emit(AlarmRaised(kind=kind, message=message, retry_in_s=retry_in_s, plain=plain, fix=fix))

    def _wait_backoff(self) -> None:
        """Wait out the back-off; the stop request and the source's state are checked meanwhile."""
        deadline = time.monotonic() + (self._backoff_s or 0.0)
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(remaining, self.settings.status_poll_s, STOP_CHECK_S))
            self._poll_status()
            self._drain_acks()

    def _clear(self, kind: AlarmKind) -> None:
        if kind in self._alarms:
            self._alarms.discard(kind)
            self._emit(AlarmCleared(kind=kind))

    def _close_runtime(self) -> None:
        runtime = self._runtime
        if runtime is None:
            return
        # close() commits the parts in flight; their listeners (PartInspected) still run.
        self._close_quietly(runtime)
        self._done_before += runtime.parts_done
        self._runtime = None

    @staticmethod
    def _close_quietly(runtime: LoopRuntime) -> None:
        try:
            runtime.close()
        except Exception:  # a failing close must not stop the recovery
            log.exception("closing the station runtime failed")

    def _emit(self, event: StationEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken display or output must not stop the inspection
                log.exception("a station subscriber failed on %s", type(event).__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _log_folders(runtime: LoopRuntime) -> list[Path]:
    """The folders whose disk the log fills: its media root and its SQLite file's folder."""
    visual_log = getattr(runtime, "log", None)
    if visual_log is None:
        return []
    folders = []
    media_root = getattr(visual_log, "media_root", None)
    if media_root is not None:
        folders.append(Path(media_root))
    url = str(getattr(visual_log, "url", ""))
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        folders.append(Path(url.removeprefix("sqlite:///")).parent)
    return folders
