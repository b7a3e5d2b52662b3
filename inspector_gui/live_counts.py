"""The shift counters, read from the visual log on a thread of their own.

The counters on the live screen are the current shift's, as the log has them: they survive a
restart of the window and are the numbers of the shift report (the same shift plan: the one
stored in the log, else ``core.reports.DEFAULT_PLAN``; the same query: decisions of this station
per verdict in ``[shift start, shift end)``). The log is opened read-only in spirit on this
thread (``VisualLog``: one writer per thread, readers open their own) and read every few seconds,
so a slow database never stalls the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.common.types import Verdict
from core.station.loop import describe_error

from .live_state import ShiftCounts

log = logging.getLogger(__name__)

REFRESH_S = 5.0  # a low rate: a shift's counts change by a few parts a second at most


def count_shift(visual_log: object, now: datetime | None = None) -> ShiftCounts:
    """The current shift's counts of ``visual_log`` (a ``VisualLog``), as the shift report counts."""
    from core.reports import DEFAULT_PLAN, ShiftPlan
    from core.storage import VisualLog

    assert isinstance(visual_log, VisualLog)
    stored = visual_log.shift_plan()
    plan = ShiftPlan.from_definitions(stored) if stored else ShiftPlan.parse(DEFAULT_PLAN)
    shift = plan.shift_at(now or datetime.now(UTC))
    counts = visual_log.counts(since=shift.start, until=shift.end)
    return ShiftCounts(
        shift=shift.label,
        start=shift.local_start,
        good=counts.get(Verdict.GOOD, 0),
        bad=counts.get(Verdict.BAD, 0),
        not_inspected=counts.get(Verdict.NOT_INSPECTED, 0),
    )


class ShiftCounter(QObject):
    """Reads the shift's counts every ``refresh_s`` on its own thread once told which log.

    Signals:
        counted(ShiftCounts): fresh counts (queued to the GUI thread).
        failed(str): the log could not be read; the counters keep their last values.
    """

    counted = Signal(object)
    failed = Signal(str)

    def __init__(self, refresh_s: float = REFRESH_S, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.refresh_s = refresh_s
        self._target: tuple[str, str | None, str] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, url: str, media_root: str | None, station: str) -> None:
        """Count this log's station from now on (opened on the counter's thread)."""
        with self._lock:
            self._target = (url, media_root, station)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shift-counter", daemon=True)
            self._thread.start()
        self._wake.set()

    def refresh_now(self) -> None:
        self._wake.set()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close its log. Idempotent."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        from core.storage import VisualLog

        opened: tuple[str, str | None, str] | None = None
        visual_log: VisualLog | None = None
        try:
            while not self._stop.is_set():
                with self._lock:
                    target = self._target
                try:
                    if target != opened or visual_log is None:
                        if visual_log is not None:
                            visual_log.close()
                            visual_log = None
                        assert target is not None
                        url, media_root, station = target
                        opened = target
                        root = Path(media_root) if media_root else None
                        visual_log = VisualLog(url, media_root=root, station=station)
                    self.counted.emit(count_shift(visual_log))
                except Exception as exc:  # a database away: say so, try again at the next tick
                    log.warning("shift counters could not be read: %s", exc)
                    self.failed.emit(describe_error(exc))
                    if visual_log is not None:
                        visual_log.close()
                    visual_log = None
                self._wake.wait(self.refresh_s)
                self._wake.clear()
        finally:
            if visual_log is not None:
                visual_log.close()
