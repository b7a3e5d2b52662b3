"""The inspection worker: one long-lived thread that owns the station runtime.

The runtime (its source, model and database session) is built *on* the worker thread by calling
the factory there, because SQLite connections, CUDA contexts and camera handles belong to the
thread that made them. The worker talks to the GUI only through signals carrying frozen
dataclasses; the GUI talks to it only through :meth:`StationWorker.stop`, which is thread-safe.

Errors never reach the GUI thread as exceptions: a failing factory or ``process_next`` is reported
with :attr:`StationWorker.failed`, the runtime is closed and rebuilt after a back-off, and the loop
goes on. Shutdown is cooperative: ``stop()`` sets an event that the loop (and the back-off wait)
checks at least every ``timeout_s`` seconds, and :class:`WorkerController` waits for the thread so
Qt never sees a ``QThread`` destroyed while running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.common.types import InspectedPart

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.1  # how long one process_next call may wait; also the worst-case stop latency
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
STOP_WARN_AFTER_S = 5.0  # the controller warns (and keeps waiting) if the worker is slower


@runtime_checkable
class RuntimeLike(Protocol):
    """What the GUI needs from ``core.station.runtime.StationRuntime``.

    Coded against as a protocol so the window can be tested with a stand-in and so the GUI does
    not import the runtime's heavy dependencies (torch) at module import time.
    """

    station_name: str
    source_description: str
    model_name: str
    model_hash: str | None
    threshold: float

    def process_next(self, timeout_s: float) -> InspectedPart | None:
        """Wait up to ``timeout_s`` for the next part, inspect and log it, return it (or None)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StationInfo:
    """What the status bar shows about the runtime; copied on the worker thread at start-up."""

    station_name: str
    source_description: str
    model_name: str
    model_hash: str | None
    threshold: float

    @classmethod
    def from_runtime(cls, runtime: RuntimeLike) -> StationInfo:
        return cls(
            station_name=str(getattr(runtime, "station_name", "")),
            source_description=str(getattr(runtime, "source_description", "")),
            model_name=str(getattr(runtime, "model_name", "")),
            model_hash=getattr(runtime, "model_hash", None),
            threshold=float(getattr(runtime, "threshold", float("nan"))),
        )

    @property
    def short_hash(self) -> str:
        return (self.model_hash or "")[:8]


def next_backoff_s(
    previous_s: float | None, *, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S
) -> float:
    """The wait before the next rebuild: 0.5 s, then doubling, capped at 5 s."""
    if previous_s is None:
        return first_s
    return min(previous_s * 2.0, max_s)


def describe_error(exc: BaseException) -> str:
    """A one-line message an operator can read (the traceback goes to the log)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class StationWorker(QObject):
    """Pulls parts through the runtime until stopped. Lives on its own ``QThread``.

    Signals:
        runtime_started(StationInfo): a runtime was built (at start and after each recovery).
        inspected(InspectedPart): a part was inspected and logged.
        failed(str): the factory or ``process_next`` raised; a human-readable message. The
            worker closes the runtime, waits (0.5 s doubling to 5 s) and rebuilds it.
        stopped(): the loop ended and the runtime is closed; emitted once, last.
    """

    runtime_started = Signal(object)
    inspected = Signal(object)
    failed = Signal(str)
    stopped = Signal()

    def __init__(
        self,
        runtime_factory: Callable[[], RuntimeLike],
        *,
        poll_timeout_s: float = POLL_TIMEOUT_S,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        super().__init__()
        self._factory = runtime_factory
        self._poll_timeout_s = poll_timeout_s
        self._backoff_first_s = backoff_first_s
        self._backoff_max_s = backoff_max_s
        self._stop_requested = threading.Event()
        self._running = threading.Event()

    # -- called from any thread -------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to end; returns at once. Safe to call from any thread, more than once."""
        self._stop_requested.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    @property
    def is_running(self) -> bool:
        return self._running.is_set()

    # -- runs on the worker thread ----------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """The loop. Connected to ``QThread.started``; returns when :meth:`stop` was called."""
        self._running.set()
        runtime: RuntimeLike | None = None
        backoff_s: float | None = None
        try:
            while not self._stop_requested.is_set():
                if runtime is None:
                    try:
                        runtime = self._factory()
                        self.runtime_started.emit(StationInfo.from_runtime(runtime))
                    except Exception as exc:  # noqa: BLE001 - any failure is reported, then retried
                        log.exception("building the station runtime failed")
                        if runtime is not None:  # built, but unusable: do not leak its handles
                            self._close_quietly(runtime)
                            runtime = None
                        backoff_s = self._next_backoff(backoff_s)
                        self.failed.emit(
                            f"Station could not start: {describe_error(exc)} (retrying in {backoff_s:.1f} s)"
                        )
                        self._stop_requested.wait(backoff_s)
                        continue
                try:
                    part = runtime.process_next(timeout_s=self._poll_timeout_s)
                except Exception as exc:  # noqa: BLE001 - the worker must outlive any one part
                    log.exception("inspecting a part failed")
                    backoff_s = self._next_backoff(backoff_s)
                    self.failed.emit(
                        f"Inspection failed: {describe_error(exc)} (restarting in {backoff_s:.1f} s)"
                    )
                    self._close_quietly(runtime)
                    runtime = None
                    self._stop_requested.wait(backoff_s)
                    continue
                backoff_s = None  # a healthy call resets the back-off
                if part is not None:
                    self.inspected.emit(part)
        finally:
            if runtime is not None:
                self._close_quietly(runtime)
            self._running.clear()
            self.stopped.emit()
            # The thread's event loop is not needed any more: let QThread.finished follow.
            thread = self.thread()
            if thread is not None:
                thread.quit()

    def _next_backoff(self, previous_s: float | None) -> float:
        return next_backoff_s(previous_s, first_s=self._backoff_first_s, max_s=self._backoff_max_s)

    @staticmethod
    def _close_quietly(runtime: RuntimeLike) -> None:
        try:
            runtime.close()
        except Exception:  # noqa: BLE001 - a failing close must not stop the recovery
            log.exception("closing the station runtime failed")


class WorkerController(QObject):
    """Owns the worker's ``QThread``: starts it and, on shutdown, stops and joins it.

    The GUI connects to ``controller.worker``'s signals (they arrive queued on the GUI thread).
    :meth:`shutdown` blocks until the thread has finished, so the ``QThread`` object is never
    destroyed while running; it is idempotent and also safe before :meth:`start`.
    """

    def __init__(
        self,
        runtime_factory: Callable[[], RuntimeLike],
        *,
        parent: QObject | None = None,
        **worker_options: float,
    ) -> None:
        super().__init__(parent)
        self.worker = StationWorker(runtime_factory, **worker_options)
        self.worker_thread = QThread()
        self.worker_thread.setObjectName("inspection-worker")
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.run)
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.worker_thread.start()

    @property
    def is_running(self) -> bool:
        return self.worker_thread.isRunning()

    def __del__(self) -> None:
        # Last line of defence: a controller dropped without shutdown() (its window was
        # garbage-collected instead of closed) must not free a running QThread, which aborts
        # the whole process with "QThread: Destroyed while thread is still running".
        try:
            if self._started and self.worker_thread.isRunning():
                log.warning("inspection worker was not shut down before its controller was dropped")
                self.shutdown()
        except (RuntimeError, AttributeError):  # C++ side already gone, or never fully built
            pass

    def shutdown(self, warn_after_s: float = STOP_WARN_AFTER_S) -> None:
        """Stop the worker and wait for its thread to end. Call from the GUI thread."""
        self.worker.stop()
        if not self._started:
            return
        self.worker_thread.quit()
        if not self.worker_thread.wait(int(warn_after_s * 1000)):
            # A runtime that ignores its timeout (a hung camera read) delays the exit; waiting
            # is still better than destroying a running QThread, which aborts the process.
            log.warning("inspection worker still busy after %.1f s; waiting for it", warn_after_s)
            self.worker_thread.wait()
