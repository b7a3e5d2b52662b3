"""The inspection worker: the station's run loop (``core.station.loop``) on a ``QThread``.

The loop owns everything that matters (building the runtime on this thread, back-off, restart,
the source's state, alarms); the worker only forwards its events as Qt signals carrying frozen
dataclasses, so the window hears exactly what the headless station prints. The GUI talks to it
only through :meth:`StationWorker.stop`, which is thread-safe, and :class:`WorkerController`
waits for the thread so Qt never sees a ``QThread`` destroyed while running.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

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
)
from core.station.loop import LoopRuntime, LoopSettings, StationLoop, describe_error

log = logging.getLogger(__name__)

STOP_WARN_AFTER_S = 5.0  # the controller warns (and keeps waiting) if the worker is slower

# The window's own pace: a step waits at most 0.1 s, so closing it is quick.
# The station's threads (the loop, its writer, the source's) run Python beside the GUI thread, and
# every paint of the window takes the GIL back many times (each Qt call releases it). At the
# interpreter's default 5 ms hand-over, the window's repaint waited up to 5 ms per take-back: the
# GUI thread stalled 120-150 ms at full rate (gui_soak, 3 minutes at 58 parts/s); with 1 ms, 68-85
# ms at the same rate, for no loss of parts/s.
GIL_SWITCH_INTERVAL_S = 0.001

GUI_SETTINGS = LoopSettings(step_timeout_s=0.1, backoff_first_s=0.5, backoff_max_s=5.0)

RuntimeFactory = Callable[[], LoopRuntime]

__all__ = ["GUI_SETTINGS", "StationInfo", "StationWorker", "WorkerController", "describe_error"]


class StationWorker(QObject):
    """Runs the station's loop until stopped. Lives on its own ``QThread``.

    Signals:
        runtime_started(StationInfo): a runtime was built (at start and after each recovery).
        inspected(InspectedPart): a part was inspected and logged.
        source_status_changed(SourceStatus): the source's state changed (offline, back online).
        alarm_raised(AlarmRaised): an alarm of its kind is raised (again, with a new message).
        alarm_cleared(AlarmKind): the alarm of that kind is over.
        alarm_acknowledged(AlarmAcknowledged): an acknowledgement was recorded (or could not be).
        failed(str): the runtime could not be built or failed; the loop rebuilds it after a
            back-off (the same news as ``alarm_raised`` of kind ``station``).
        stopped(): the loop ended and the runtime is closed; emitted once, last.
    """

    runtime_started = Signal(object)
    inspected = Signal(object)
    source_status_changed = Signal(object)
    alarm_raised = Signal(object)
    alarm_cleared = Signal(object)
    alarm_acknowledged = Signal(object)
    failed = Signal(str)
    stopped = Signal()

    def __init__(self, runtime_factory: RuntimeFactory, *, settings: LoopSettings | None = None) -> None:
        super().__init__()
        self._loop = StationLoop(runtime_factory, settings=settings or GUI_SETTINGS)
        self._loop.subscribe(self._forward)
        self._running = threading.Event()

    # -- called from any thread -------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to end; returns at once. Safe to call from any thread, more than once."""
        self._loop.stop()

    def threshold_changed(self) -> None:
        """A threshold was recorded: the station reads it before its next part. Any thread."""
        self._loop.threshold_changed()

    def acknowledge(self, kind: AlarmKind, user: str = "operator") -> None:
        """Record the operator's acknowledgement of an alarm (on the worker thread). Any thread."""
        self._loop.acknowledge(kind, user)

    @property
    def stop_requested(self) -> bool:
        return self._loop.stop_requested

    @property
    def is_running(self) -> bool:
        return self._running.is_set()

    # -- runs on the worker thread ----------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Connected to ``QThread.started``; returns when :meth:`stop` was called."""
        self._running.set()
        try:
            self._loop.run()
        except Exception as exc:  # a bug in the loop: say so rather than die silently
            log.exception("the station loop failed")
            self.failed.emit(f"Inspection stopped: {describe_error(exc)}")
        finally:
            self._running.clear()
            self.stopped.emit()
            # The thread's event loop is not needed any more: let QThread.finished follow.
            thread = self.thread()
            if thread is not None:
                thread.quit()

    def _forward(self, event: StationEvent) -> None:
        # Signals cross to the GUI thread queued; the events are frozen, so sharing is safe.
        if isinstance(event, PartInspected):
            self.inspected.emit(event.item)
        elif isinstance(event, StationStarted):
            self.runtime_started.emit(event.info)
        elif isinstance(event, SourceStatusChanged):
            self.source_status_changed.emit(event.status)
        elif isinstance(event, AlarmRaised):
            self.alarm_raised.emit(event)
            if event.kind is AlarmKind.STATION:
                self.failed.emit(event.message)
        elif isinstance(event, AlarmCleared):
            self.alarm_cleared.emit(event.kind)
        elif isinstance(event, AlarmAcknowledged):
            self.alarm_acknowledged.emit(event)


class WorkerController(QObject):
    """Owns the worker's ``QThread``: starts it and, on shutdown, stops and joins it.

    The GUI connects to ``controller.worker``'s signals (they arrive queued on the GUI thread).
    :meth:`shutdown` blocks until the thread has finished, so the ``QThread`` object is never
    destroyed while running; it is idempotent and also safe before :meth:`start`.
    """

    def __init__(
        self,
        runtime_factory: RuntimeFactory,
        *,
        settings: LoopSettings | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = StationWorker(runtime_factory, settings=settings)
        self.worker_thread = QThread()
        self.worker_thread.setObjectName("inspection-worker")
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.run)
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
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
