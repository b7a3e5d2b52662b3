"""The station runtime: source -> inspector -> visual log, every part exactly one row.

The same runtime runs headless (``inspector run``, ``run_headless``) and inside the GUI's worker
thread. It is made on the thread that uses it: the model, the source and the log it reads belong
to that thread.

Order of events for each part, which is what makes a crash harmless:

1. the source hands out the part (a hot-folder file stays in the inbox);
2. the model inspects it (parts already waiting are inspected together, up to ``max_batch``);
3. the visual log commits its row;
4. only then the source is told (``acknowledge``: the file moves to ``processed/``), and the
   listeners (GUI, outputs) get the decision.

A crash before 3 leaves the file in the inbox: it is inspected after the restart. A crash between
3 and 4 leaves a file whose bytes are in the log: the hot folder moves it without a second row.

With ``writer_log`` the rows are written by a writer thread that owns its own ``VisualLog``, so
that the disk and database waits of one part overlap with the inspection of the next (as
``inspector bench`` measures the pipeline), and the rows of all parts waiting for it go in one
transaction (group commit: one database sync and one directory sync for a burst, not one per
part); the station's thread still acknowledges and notifies, in order. A row that cannot be stored (``StorageError``: disk full, database locked) is not
acknowledged: the source keeps the original (``release``) and the error reaches the caller, who
shows the alarm and tries again (``run`` waits with back-off; the GUI worker rebuilds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from core.common.types import InspectedPart, Inspection, Part, Verdict
from core.sources import Backpressure, Source, SourceStatus

if TYPE_CHECKING:
    from core.inference.inspector import Inspector
    from core.storage import VisualLog

log = logging.getLogger(__name__)

_GROUP_COMMIT = 32  # most parts the writer commits in one transaction

Listener = Callable[[InspectedPart], None]
StatusListener = Callable[[SourceStatus], None]
AlarmListener = Callable[[str], None]

STATUS_POLL_S = 0.2
RECOVERY_FIRST_S = 0.5
RECOVERY_MAX_S = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    part: Part
    inspection: Inspection | None
    reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Done:
    job: _Job
    decision: Any  # Decision | None
    error: BaseException | None


class _Writer(Protocol):
    pending: int

    def submit(self, job: _Job) -> None: ...
    def take_done(self) -> list[_Done]: ...
    def wait(self, timeout_s: float) -> None: ...
    def close(self) -> None: ...


def _record(visual_log: VisualLog, job: _Job, model_hash: str | None, model_name: str | None) -> Any:
    """Record one job; a part whose row cannot be written with its media gets a bare error row."""
    from core.storage import StorageError

    try:
        return visual_log.record(
            job.part, job.inspection, model_hash=model_hash, model_name=model_name, reason=job.reason
        )
    except StorageError:
        raise
    except Exception as exc:  # a bug or an odd input: the part still gets its row
        log.exception("recording %s failed; recording it as not inspected", job.part.source_ref)
        bare = dataclasses.replace(
            job.part,
            image=None,
            encoded=None,
            error=f"not inspected: recording the decision failed ({type(exc).__name__}: {exc})",
        )
        return visual_log.record(bare, None, model_hash=model_hash, model_name=model_name)


def _record_group(
    visual_log: VisualLog, jobs: list[_Job], model_hash: str | None, model_name: str | None
) -> list[_Done]:
    """Record ``jobs`` in one transaction; when that fails for a reason other than the storage,
    record them one by one, so one odd part does not cost the others their rows."""
    from core.storage import Entry, StorageError

    if len(jobs) > 1:
        try:
            entries = [Entry(part=j.part, inspection=j.inspection, reason=j.reason) for j in jobs]
            decisions = visual_log.record_many(entries, model_hash=model_hash, model_name=model_name)
            return [_Done(job, decision, None) for job, decision in zip(jobs, decisions, strict=True)]
        except StorageError:
            raise
        except Exception:
            log.debug("group commit of %d parts failed; recording them one by one", len(jobs), exc_info=True)
    done = []
    for job in jobs:
        try:
            done.append(_Done(job, _record(visual_log, job, model_hash, model_name), None))
        except Exception as exc:
            done.append(_Done(job, None, exc))
    return done


class _InlineWriter:
    """Records on the caller's thread, at once."""

    def __init__(self, visual_log: VisualLog, model_hash: str | None, model_name: str | None) -> None:
        self._log, self._hash, self._name = visual_log, model_hash, model_name
        self._done: list[_Done] = []
        self.pending = 0

    def submit(self, job: _Job) -> None:
        try:
            self._done.append(_Done(job, _record(self._log, job, self._hash, self._name), None))
        except Exception as exc:
            self._done.append(_Done(job, None, exc))

    def take_done(self) -> list[_Done]:
        done, self._done = self._done, []
        return done

    def wait(self, timeout_s: float) -> None:
        pass

    def close(self) -> None:
        pass


class _ThreadWriter:
    """Records on its own thread with its own ``VisualLog`` (made there), in submission order."""

    def __init__(
        self, open_log: Callable[[], VisualLog], model_hash: str | None, model_name: str | None
    ) -> None:
        self._open_log, self._hash, self._name = open_log, model_hash, model_name
        self._cond = threading.Condition()
        self._jobs: deque[_Job | None] = deque()
        self._done: deque[_Done] = deque()
        self.pending = 0  # submitted and not yet taken back
        self._thread = threading.Thread(target=self._run, name="station-writer", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        with self._cond:
            self.pending += 1
            self._jobs.append(job)
            self._cond.notify_all()

    def take_done(self) -> list[_Done]:
        with self._cond:
            done = list(self._done)
            self._done.clear()
            self.pending -= len(done)
            return done

    def wait(self, timeout_s: float) -> None:
        with self._cond:
            if not self._done and timeout_s > 0:
                self._cond.wait(timeout_s)

    def close(self) -> None:
        with self._cond:
            self._jobs.append(None)
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        visual_log: VisualLog | None = None
        try:
            while True:
                with self._cond:
                    while not self._jobs:
                        self._cond.wait()
                    # Everything waiting goes in one transaction (group commit).
                    jobs: list[_Job] = []
                    while self._jobs and self._jobs[0] is not None and len(jobs) < _GROUP_COMMIT:
                        jobs.append(self._jobs.popleft())  # type: ignore[arg-type]
                    stop = not jobs
                if stop:
                    return
                try:
                    if visual_log is None:  # (again) after the storage was unavailable
                        visual_log = self._open_log()
                    results = _record_group(visual_log, jobs, self._hash, self._name)
                except Exception as exc:
                    results = [_Done(job, None, exc) for job in jobs]
                with self._cond:
                    self._done.extend(results)
                    self._cond.notify_all()
        finally:
            if visual_log is not None:
                visual_log.close()


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
        writer_log: Opens the log for a writer thread; rows are then written there (see the
            module docstring). None records on this thread.
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
        self.alarm_listeners: list[AlarmListener] = []
        self.verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        self.started_at = time.monotonic()
        self.source_status: SourceStatus | None = None
        self._status_polled = 0.0
        self._ready: deque[InspectedPart] = deque()
        self._in_pipeline = 0
        self._take_limit: int | None = None  # set by run(max_parts=...)
        self._closed = False
        model_hash, model_name = inspector.model_hash, inspector.card.name
        self._writer: _Writer = (
            _ThreadWriter(writer_log, model_hash, model_name)
            if writer_log is not None
            else _InlineWriter(visual_log, model_hash, model_name)
        )
        self._depth = 2 * self.max_batch  # parts inspected and waiting for their row, at most

    # Read by the GUI for display.
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
        self._poll_status()
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
        for limit in (self.max_parts, self._take_limit):
            if limit is not None:
                room = min(room, limit - self.parts_done - self._in_pipeline - len(self._ready))
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

    def _inspect_and_submit(self, parts: list[Part]) -> None:
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
            self._writer.submit(_Job(part, inspection, reason))

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
                heatmap=inspection.heatmap if inspection is not None else None,
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

    def _poll_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._status_polled < STATUS_POLL_S:
            return
        self._status_polled = now
        try:
            status = self.source.status()
        except Exception:
            log.exception("reading the source's status failed")
            return
        changed = self.source_status is None or status.state != self.source_status.state
        self.source_status = status
        if changed:
            for listener in self.status_listeners:
                try:
                    listener(status)
                except Exception:
                    log.exception("a status listener failed")

    # ------------------------------------------------------------------ running

    def run(
        self,
        stop: threading.Event,
        *,
        max_parts: int | None = None,
        on_step: Callable[[], None] | None = None,
    ) -> int:
        """Process parts until ``stop`` is set, ``max_parts`` are done or the source ends.

        Storage errors are alarms, not the end: the part stays with its source, listeners of
        ``alarm_listeners`` are told, and the runtime tries again after a back-off (0.5 s
        doubling to 10 s) until the storage is back. Returns the number of parts done.
        """
        from core.storage import StorageError

        start = self.parts_done
        self._take_limit = None if max_parts is None else start + max_parts
        backoff_s: float | None = None
        try:
            while not stop.is_set() and not self.finished:
                if max_parts is not None and self.parts_done - start >= max_parts:
                    break
                try:
                    self.process_next(timeout_s=0.2)
                    backoff_s = None
                except StorageError as exc:
                    backoff_s = RECOVERY_FIRST_S if backoff_s is None else min(backoff_s * 2, RECOVERY_MAX_S)
                    message = f"{exc} (retrying in {backoff_s:.1f} s)"
                    log.error("%s", message)
                    for alarm in self.alarm_listeners:
                        alarm(message)
                    stop.wait(backoff_s)
                if on_step is not None:
                    on_step()
            self.drain()
        finally:
            self._take_limit = None
        return self.parts_done - start

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
            for step in (self._writer.close, self.source.close, self.log.close):
                try:
                    step()
                except Exception:
                    log.exception("closing the station failed at %s", getattr(step, "__qualname__", step))


def _record_model_and_threshold(visual_log: Any, inspector: Any) -> None:
    """Keep what the model hash stands for, and audit a threshold that differs from the last one."""
    card = inspector.card
    visual_log.register_model(inspector.model_hash, name=card.name, metadata=card.model_dump(mode="json"))
    changes = visual_log.threshold_changes()
    previous = changes[-1].new if changes else None
    if previous is None or abs(previous - inspector.threshold) > 1e-12:
        visual_log.record_threshold_change(
            previous,
            inspector.threshold,
            user="system",
            reason=f"station started with model {card.name} ({card.short_hash})",
            model_hash=inspector.model_hash,
            model_name=card.name,
        )


def build_runtime(
    source_spec: str,
    model: Path,
    *,
    db_url: str | None = None,
    media_root: Path | None = None,
    station_name: str = "station-1",
    device: str | None = None,
    threshold: float | None = None,
    max_parts: int | None = None,
    max_batch: int = 8,
    background_writer: bool = True,
    source_options: dict[str, Any] | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> StationRuntime:
    """Make a runtime from plain settings (call it on the thread that will use it).

    Args:
        source_spec: See ``core.sources.open_source``.
        model: The model bundle.
        db_url, media_root: The visual log (defaults: ``core.common.paths``).
        station_name: Recorded with every decision.
        device, threshold, backend, threads: For the ``Inspector``.
        max_parts: Take no part after this many.
        max_batch: Inspect up to this many waiting parts together.
        background_writer: Write rows on a writer thread (see ``StationRuntime``).
        source_options: Passed to the source (e.g. ``settle_s``, ``trigger``, ``queue_size``).
    """
    from core.inference.inspector import Inspector
    from core.sources import open_source
    from core.storage import VisualLog

    inspector = Inspector(model, device=device, threshold=threshold, backend=backend, threads=threads)
    visual_log = VisualLog(db_url, media_root=media_root, station=station_name)
    try:
        _record_model_and_threshold(visual_log, inspector)
        source = open_source(source_spec, seen=visual_log.find_by_content_hash, **(source_options or {}))
    except BaseException:
        visual_log.close()
        raise

    def writer_log() -> VisualLog:
        return VisualLog(db_url, media_root=media_root, station=station_name)

    return StationRuntime(
        source,
        inspector,
        visual_log,
        station_name=station_name,
        max_parts=max_parts,
        max_batch=max_batch,
        writer_log=writer_log if background_writer else None,
    )


# ------------------------------------------------------------------------------- headless


def _stamp() -> str:
    return datetime.now(UTC).astimezone().strftime("%H:%M:%S")


def summary_line(runtime: StationRuntime) -> str:
    """One line about the station so far: counts, rate, the source's state."""
    elapsed = max(1e-9, time.monotonic() - runtime.started_at)
    v = runtime.verdicts
    status = runtime.source_status
    source = "source: unknown"
    if status is not None:
        source = (
            f"source {'online' if status.online else 'OFFLINE'}, backlog {status.backlog}, "
            f"overflowed {status.overflowed}, reconnects {status.reconnects}"
        )
    return (
        f"{runtime.station_name}: {runtime.parts_done} parts (good {v[Verdict.GOOD]}, bad {v[Verdict.BAD]}, "
        f"not inspected {v[Verdict.NOT_INSPECTED]}), {runtime.parts_done / elapsed:.1f} parts/s; {source}"
    )


def run_headless(
    factory: Callable[[], StationRuntime],
    *,
    quit_after: int | None = None,
    outputs: Sequence[str] = ("jsonl",),
    summary_every_s: float = 10.0,
    err: TextIO | None = None,
) -> int:
    """The station without a window until SIGINT/SIGTERM, ``quit_after`` parts or the source's end.

    Decisions go to ``outputs`` (see ``core.outputs.open_output``); the source's state changes,
    storage alarms and a summary every ``summary_every_s`` go to ``err`` (stderr). Parts already
    taken are finished and committed before it returns.
    """
    from core.outputs import Output, open_output

    err = err or sys.stderr
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    def say(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # stderr closed: keep inspecting
            print(f"{_stamp()} {line}", file=err, flush=True)

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    opened: list[Output] = []
    runtime: StationRuntime | None = None
    try:
        runtime = factory()
        for spec in outputs:
            opened.append(open_output(spec, station=runtime.station_name))
        for output in opened:
            runtime.listeners.append(output.publish)
            runtime.status_listeners.append(output.status)
        runtime.status_listeners.append(
            lambda s: say(f"{runtime.station_name if runtime else ''}: {s.message}")
        )
        runtime.alarm_listeners.append(lambda message: say(f"ALARM {message}"))
        say(f"{runtime.station_name}: inspecting parts from {runtime.source_description} "
            f"with {runtime.model_name} ({(runtime.model_hash or '')[:12]}), threshold {runtime.threshold:.4f}")  # fmt: skip
        next_summary = time.monotonic() + summary_every_s

        def tick() -> None:
            nonlocal next_summary
            if summary_every_s > 0 and time.monotonic() >= next_summary and runtime is not None:
                next_summary = time.monotonic() + summary_every_s
                say(summary_line(runtime))

        runtime.run(stop, max_parts=quit_after, on_step=tick)
    finally:
        try:
            if runtime is not None:
                runtime.close()
                say(summary_line(runtime) + (" (stopped)" if stop.is_set() else ""))
        finally:
            for output in opened:
                try:
                    output.close()
                except Exception:
                    log.exception("closing output %s failed", output.name)
            for s, h in previous.items():
                signal.signal(s, h)
    return 0
