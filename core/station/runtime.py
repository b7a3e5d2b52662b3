"""The station runtime: source -> inspector -> visual log, every part exactly one row.

One step at a time (``process_next``); the run loop (``core.station.loop``) drives it, the same
way headless and in the GUI, and ``inspector bench`` times it. A runtime is made on the thread
that uses it: the model, the source and the log it reads belong to that thread.

Order of events for each part, which is what makes a crash harmless:

1. the source hands out the part (a hot-folder file stays in the inbox);
2. the model inspects it (parts already waiting are inspected together, up to ``max_batch``);
3. the visual log commits its row (``core.station.writer``: on this thread, or on a writer
   thread with group commit);
4. only then the source is told (``acknowledge``: the file moves to ``processed/``), and the
   listeners (GUI, outputs) get the decision.

A crash before 3 leaves the file in the inbox: it is inspected after the restart. A crash between
3 and 4 leaves a file whose bytes are in the log: the hot folder moves it without a second row.
A row that cannot be stored (``StorageError``: disk full, database locked) is not acknowledged:
the source keeps the original (``release``) and the error reaches the caller, the run loop, which
raises the alarm and tries again with back-off.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.common.types import InspectedPart, Inspection, Part, Verdict
from core.sources.base import Backpressure, Source, SourceStatus
from core.station.events import StationInfo
from core.station.writer import InlineWriter, Job, ThreadWriter, Writer

if TYPE_CHECKING:
    from core.inference.inspector import Inspector
    from core.station.config import StationConfig
    from core.storage import VisualLog

log = logging.getLogger(__name__)

Listener = Callable[[InspectedPart], None]
StatusListener = Callable[[SourceStatus], None]

STATUS_POLL_S = 0.2
# How often, at most, the runtime reads the log's current threshold (about 0.6 ms a read on
# SQLite, so 0.25 s costs nothing measurable): a change recorded by another process
# (``inspector threshold set``) judges every part that arrives this long after it. The window's
# own panel tells the runtime at once (``threshold_changed``).
THRESHOLD_POLL_S = 0.25


class StationRuntime:
    """Takes parts from a source, inspects them and logs each decision before acknowledging it.

    Args:
        source: Where parts come from (see ``core.sources``).
        inspector: The model.
        visual_log: The log, used on this thread: it records when ``writer_log`` is None, and the
            hot folder's duplicate check reads it.
        station_name: Recorded with every decision.
        listeners: Called with each committed decision, on this thread, in order.
        status_listeners: Called when the source's state changes (camera offline, ...).
        max_parts: Take no part after this many (smoke tests, batch runs).
        max_batch: Parts already waiting are inspected together, up to this many.
        writer_log: Opens the log for a writer thread; rows are then written there (see
            ``core.station.writer``). None records on this thread.
        status_poll_s: The source's state is read at most this often.
        threshold_poll_s: The log's current threshold is read at most this often (before parts
            are inspected); a recorded change takes effect on the next part inspected after it.
    """

    def __init__(
        self,
        source: Source,
        inspector: Inspector,
        visual_log: VisualLog,
        *,
        station_name: str = "station-1",
        listeners: list[Listener] | None = None,
        status_listeners: list[StatusListener] | None = None,
        max_parts: int | None = None,
        max_batch: int = 8,
        writer_log: Callable[[], VisualLog] | None = None,
        status_poll_s: float = STATUS_POLL_S,
        threshold_poll_s: float = THRESHOLD_POLL_S,
    ) -> None:
        self.max_parts = max_parts
        self.max_batch = max(1, int(max_batch))
        self.parts_done = 0
        self.source = source
        self.inspector = inspector
        self.log = visual_log
        self.station_name = station_name
        self.listeners = list(listeners or [])
        self.status_listeners = list(status_listeners or [])
        self.verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        self.started_at = time.monotonic()
        self.source_status: SourceStatus | None = None
        self.status_poll_s = float(status_poll_s)
        self._status_polled = float("-inf")
        self.threshold_poll_s = float(threshold_poll_s)
        self._threshold_polled = float("-inf")
        self._ready: deque[InspectedPart] = deque()
        self._in_pipeline = 0
        self._closed = False
        model_hash, model_name = inspector.model_hash, inspector.card.name
        self._writer: Writer = (
            ThreadWriter(writer_log, model_hash, model_name)
            if writer_log is not None
            else InlineWriter(visual_log, model_hash, model_name)
        )
        self._depth = 2 * self.max_batch  # parts inspected and waiting for their row, at most

    def info(self) -> StationInfo:
        """What the operator is shown about this runtime (the threshold as in force now)."""
        return StationInfo(
            station_name=self.station_name,
            source_description=self.source_description,
            model_name=self.model_name,
            model_hash=self.model_hash,
            threshold=self.threshold,
        )

    @property
    def source_description(self) -> str:
        return self.source.description

    @property
    def model_name(self) -> str:
        return self.inspector.card.name

    @property
    def model_hash(self) -> str | None:
        return self.inspector.model_hash

    @property
    def threshold(self) -> float:
        return self.inspector.threshold

    @property
    def finished(self) -> bool:
        """No further part will come: ``max_parts`` are done, or the source has ended."""
        if self._in_pipeline or self._ready:
            return False
        if self.max_parts is not None and self.parts_done >= self.max_parts:
            return True
        return self.source_status is not None and self.source_status.finished

    # ------------------------------------------------------------------ one step

    def process_next(self, timeout_s: float) -> InspectedPart | None:
        """Wait up to ``timeout_s`` for a part; inspect, log and acknowledge it.

        Returns the next committed decision (with its pixels), or None when none is ready yet.
        Parts inspected together come back from consecutive calls.

        Raises:
            StorageError: A row could not be stored; its part was given back to the source.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        self.poll_status()
        while True:
            self._collect()
            if self._ready:
                return self._ready.popleft()
            room = self._room()
            if room > 0:
                wait = max(0.0, deadline - time.monotonic()) if self._writer.pending == 0 else 0.0
                parts = self._take(room, wait)
                if parts:
                    self._inspect_and_submit(parts)
                    continue
            remaining = deadline - time.monotonic()
            if self._writer.pending:
                self._writer.wait(max(0.0, remaining) if remaining > 0 else 0.05)
                if remaining <= 0:
                    self._collect()
                    return self._ready.popleft() if self._ready else None
                continue
            if remaining <= 0:
                return None
            if room <= 0:  # finished: nothing more to take
                time.sleep(min(remaining, 0.05))
                return None

    def drain(self, timeout_s: float = 30.0) -> list[InspectedPart]:
        """Commit what is inspected and still in the pipeline; return the decisions not yet returned."""
        deadline = time.monotonic() + timeout_s
        while self._writer.pending and time.monotonic() < deadline:
            self._writer.wait(0.1)
            self._collect()
        self._collect()
        items = list(self._ready)
        self._ready.clear()
        return items

    def _room(self) -> int:
        room = self.max_batch if self._writer.pending < self._depth else 0
        if self.max_parts is not None:
            room = min(room, self.max_parts - self.parts_done - self._in_pipeline - len(self._ready))
        return room

    def _take(self, room: int, wait_s: float) -> list[Part]:
        first = self.source.next_part(wait_s)
        if first is None:
            return []
        parts = [first]
        while len(parts) < room:
            more = self.source.next_part(0.0)
            if more is None:
                break
            parts.append(more)
        return parts

    def poll_threshold(self, *, force: bool = False) -> float:
        """Take the threshold last recorded in the log (at most every ``threshold_poll_s`` unless
        ``force``); returns the threshold in force. A log that cannot be read keeps the old one."""
        now = time.monotonic()
        if not force and now - self._threshold_polled < self.threshold_poll_s:
            return self.inspector.threshold
        self._threshold_polled = now
        try:
            recorded = self.log.current_threshold()
        except Exception:
            # Storage trouble is the writer's alarm to raise; judging goes on at the old threshold.
            log.warning("reading the current threshold failed; keeping %s", self.inspector.threshold)
            return self.inspector.threshold
        if recorded is not None and recorded != self.inspector.threshold:
            log.info("threshold changed from %s to %s", self.inspector.threshold, recorded)
            self.inspector.set_threshold(recorded)
        return self.inspector.threshold

    def threshold_changed(self) -> None:
        """A threshold was just recorded: read it before the next part. Any thread.

        The GUI's threshold panel calls this (through the loop) so that the change reaches the
        very next part; a change made elsewhere still arrives within ``threshold_poll_s``.
        """
        self._threshold_polled = float("-inf")  # a float store: atomic, no lock needed

    def _inspect_and_submit(self, parts: list[Part]) -> None:
        self.poll_threshold()
        todo = [p for p in parts if p.image is not None and p.error is None]
        inspections: dict[str, Inspection] = {}
        failures: dict[str, str] = {}
        if todo:
            try:
                results = self.inspector.inspect_batch([p.image for p in todo])  # type: ignore[misc]
                inspections = {p.part_id: r for p, r in zip(todo, results, strict=True)}
            except Exception:
                # Find the part that fails; the others are still inspected.
                for p in todo:
                    try:
                        inspections[p.part_id] = self.inspector.inspect(p.image)  # type: ignore[arg-type]
                    except Exception as exc:
                        log.exception("inspection failed for %s", p.source_ref)
                        failures[p.part_id] = f"inspection failed: {type(exc).__name__}: {exc}"
        for part in parts:
            inspection = inspections.get(part.part_id)
            reason = part.error or failures.get(part.part_id)
            if inspection is None and reason is None:
                reason = "not inspected: no image"
            self._in_pipeline += 1
            self._writer.submit(Job(part, inspection, reason))

    def _collect(self) -> None:
        storage_error: BaseException | None = None
        for done in self._writer.take_done():
            self._in_pipeline -= 1
            part = done.job.part
            if done.decision is None:
                self._release(part)
                storage_error = storage_error or done.error
                continue
            try:
                self.source.acknowledge(part, done.decision)
            except Exception:
                log.exception("the source failed to let go of %s", part.source_ref)
            self.parts_done += 1
            self.verdicts[done.decision.verdict] += 1
            inspection = done.job.inspection
            item = InspectedPart(
                decision=done.decision,
                image=part.image,
                # The map of whichever check fired: the anomaly map when only the good-only model did.
                heatmap=inspection.shown_heatmap if inspection is not None else None,
            )
            for listener in self.listeners:
                try:
                    listener(item)
                except Exception:
                    log.exception("a listener failed on part %s", part.part_id)
            self._ready.append(item)
        if storage_error is not None:
            raise storage_error

    def _release(self, part: Part) -> None:
        try:
            self.source.release(part)
        except Exception:
            log.exception("the source could not take back %s", part.source_ref)

    def poll_status(self, *, force: bool = False) -> SourceStatus | None:
        """Read the source's state (at most every ``status_poll_s`` unless ``force``); tell the
        status listeners when it changed. Returns the state as last read."""
        now = time.monotonic()
        if not force and now - self._status_polled < self.status_poll_s:
            return self.source_status
        self._status_polled = now
        try:
            status = self.source.status()
        except Exception:
            log.exception("reading the source's status failed")
            return self.source_status
        changed = self.source_status is None or status.state != self.source_status.state
        self.source_status = status
        if changed:
            for listener in self.status_listeners:
                try:
                    listener(status)
                except Exception:
                    log.exception("a status listener failed")
        return status

    def close(self) -> None:
        """Finish what was acquired, then let go of the source, the writer and the log."""
        if self._closed:
            return
        self._closed = True
        try:
            self.source.stop()
            if self.source.backpressure is Backpressure.RECORD_OVERFLOW:
                # A camera's queued parts exist nowhere else: inspect and record them now.
                deadline = time.monotonic() + 10.0
                while time.monotonic() < deadline:
                    room = self._room()
                    parts = self._take(room, 0.0) if room > 0 else []
                    if parts:
                        self._inspect_and_submit(parts)
                    elif not self._writer.pending:
                        break
                    else:
                        self._writer.wait(0.1)
                    self._collect()
            self.drain()
        except Exception:
            log.exception("finishing the parts in flight failed")
        finally:
            steps: tuple[tuple[str, Callable[[], None]], ...] = (
                ("writer", self._writer.close),
                ("source", self.source.close),
                ("log", self.log.close),
            )
            for name, step in steps:
                try:
                    step()
                except Exception:
                    log.exception("closing the station's %s failed", name)


def _record_model_and_threshold(
    visual_log: VisualLog, inspector: Inspector, configured: float | None
) -> None:
    """Keep what the model hash stands for, and start at the threshold the log says is in force.

    The threshold last recorded for this model (by a supervisor, or by an earlier start) survives
    a restart. A new model starts at the configured threshold, or its bundle's, recorded as the
    station's own (system) change. A configured threshold that differs from the one recorded for
    the same model is not applied: changing it needs a log-in (``inspector threshold set``, or
    ``inspector run --threshold``, which records it first).
    """
    card = inspector.card
    # The metadata is what the hash covers (the card, and the graph run on ONNX Runtime), so that
    # an auditor can recompute the hash from the log (core.inference.onnx_bundle.model_hash_of).
    visual_log.register_model(inspector.model_hash, name=card.name, metadata=inspector.model_metadata)
    changes = visual_log.threshold_changes()
    last = changes[-1] if changes else None
    if last is not None and last.model_hash in (None, inspector.model_hash):
        if configured is not None and abs(configured - last.new) > 1e-12:
            log.warning(
                "threshold %s from the configuration not applied: %s, set by %s at %s, is in force"
                " (change it with inspector threshold set)",
                configured,
                last.new,
                last.user,
                last.created_at.isoformat(timespec="seconds"),
            )
        inspector.set_threshold(last.new)
        return
    visual_log.record_threshold_change(
        None if last is None else last.new,
        inspector.threshold,
        actor=visual_log.access.system_actor(),
        reason=f"station started with model {card.name} ({(inspector.model_hash or '')[:12]})",
        model_hash=inspector.model_hash,
        model_name=card.name,
    )


def build_runtime(config: StationConfig) -> StationRuntime:
    """Make a runtime from a validated configuration (call it on the thread that will use it).

    The model is loaded, the log opened, the model registered and a changed threshold audited,
    then the source is opened with the options that apply to its kind.

    Raises:
        BundleError: The model bundle was refused.
        StorageError: The log cannot be opened.
        SourceError, OSError: The source cannot be opened.
    """
    from core.inference.inspector import Inspector
    from core.sources.registry import open_source
    from core.storage import VisualLog

    inspector = Inspector(
        config.model,
        device=None if config.device == "auto" else config.device,
        threshold=config.threshold,
        backend=config.backend,
        threads=config.threads,
    )
    db_url, media_root, station = config.db_url, config.media_root, config.station_name
    visual_log = VisualLog(db_url, media_root=media_root, station=station)
    try:
        _record_model_and_threshold(visual_log, inspector, config.threshold)
        source = open_source(config.source, seen=visual_log.find_by_content_hash, **config.source_kwargs())
    except BaseException:
        visual_log.close()
        inspector.close()
        raise

    def writer_log() -> VisualLog:
        return VisualLog(db_url, media_root=media_root, station=station)

    return StationRuntime(
        source,
        inspector,
        visual_log,
        station_name=station,
        max_parts=config.max_parts,
        max_batch=config.max_batch,
        writer_log=writer_log if config.background_writer else None,
        status_poll_s=config.status_poll_s,
    )
