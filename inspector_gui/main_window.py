"""The operator's window: the newest part, its verdict, the history and the shift counters.

The window shows what the station's run loop says, honestly: the station's state in the header
(watching, no parts for N s, source offline, restarting, database unavailable, disk nearly full,
model missing), and every alarm in plain words with its fix until the operator acknowledges it
(recorded in the visual log by the loop). While no current verdict reaches the screen the banner
is greyed out with the age of the last part, and the LIVE pill and button say why.

Parts arrive from the worker as fast as the line runs. ``_on_worker_inspected`` only records
them (counters, history, "newest", the last bad part); the pixels are drawn by
``_on_repaint_timer_timeout`` at most 10 times a second, so a burst of parts costs one repaint.
A bad part stays on the banner for at least ``BAD_DWELL_S`` (no flicker at 10 parts/s), and the
last bad part is held beside the live one until acknowledged. Reviewing (a click, or the arrow
keys) freezes the history strip and returns to live after ``review_timeout_s``.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

from core.common.types import InspectedPart, Verdict
from core.sources.base import SourceStatus
from core.station.events import AlarmAcknowledged, AlarmKind, AlarmRaised, StationInfo

from . import theme
from .live_counts import REFRESH_S, ShiftCounter
from .live_layout import HISTORY_LENGTH, SIDE_MAX_PX, SIDE_MIN_PX, LiveLayout
from .live_render import BAD_DWELL_S, LiveRendering
from .live_state import (
    NOT_DELIVERING,
    AlarmBoard,
    Counters,
    ShiftCounts,
    format_score,
    station_state,
)
from .picture_composer import PictureComposer
from .worker import WorkerController

log = logging.getLogger(__name__)

REPAINT_INTERVAL_MS = 100  # 10 Hz: smooth enough for a person, cheap for the GUI thread
REVIEW_TIMEOUT_S = 30.0

__all__ = ["BAD_DWELL_S", "HISTORY_LENGTH", "REPAINT_INTERVAL_MS", "Counters", "StationWindow"]


class StationWindow(LiveRendering, LiveLayout, QMainWindow):
    """The operator station.

    Args:
        controller: the worker controller whose signals feed the window; the window stops it when
            it closes. None gives an idle window (parts can still be fed to the slots in tests).
        title: the window title; default ``"inspector — <station>"`` once the runtime reports.
        quit_after: close the window after this many parts were received (smoke tests, demo).
        screenshot: save a PNG of the window here just before it closes.
        review_timeout_s: a review returns to live after this long without a touch; 0: never.
            Default ``INSPECTOR_GUI_REVIEW_TIMEOUT_S``, else 30 s.
        kiosk: open full screen (F11 toggles it in any case). Default ``INSPECTOR_GUI_KIOSK``
            (1/true/yes), else off.
        alarm_sound: beep when an alarm is raised. Default ``INSPECTOR_GUI_ALARM_SOUND``, else off.
        shift_refresh_s: how often the shift counters are read from the log.
        user_provider: who is at the station (the logged-in supervisor's name, or None); an
            acknowledgement is recorded under this name, else as ``operator``.

    Signals:
        closed(): the window has closed and its worker has stopped.
    """

    closed = Signal()

    def __init__(
        self,
        controller: WorkerController | None = None,
        *,
        title: str | None = None,
        quit_after: int | None = None,
        screenshot: Path | None = None,
        review_timeout_s: float | None = None,
        kiosk: bool | None = None,
        alarm_sound: bool | None = None,
        shift_refresh_s: float = REFRESH_S,
        user_provider: Callable[[], str | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._controller = controller
        self._fixed_title = title
        self._quit_after = quit_after
        self._screenshot = screenshot
        self._info: StationInfo | None = None
        # Settings of the station's screen, not of the station: given, else from the environment
        # (a desktop entry or service file sets them), else the defaults.
        kiosk = _env_flag("INSPECTOR_GUI_KIOSK") if kiosk is None else kiosk
        self.alarm_sound = _env_flag("INSPECTOR_GUI_ALARM_SOUND") if alarm_sound is None else alarm_sound
        if review_timeout_s is None:
            review_timeout_s = _env_seconds("INSPECTOR_GUI_REVIEW_TIMEOUT_S", REVIEW_TIMEOUT_S)
        self.user_provider = user_provider

        # state written by the slots, read by the repaint timer
        self._latest: InspectedPart | None = None
        self._latest_at: float | None = None  # monotonic arrival of the newest part
        self._selected: InspectedPart | None = None  # shown instead of the latest while reviewing
        self._frozen: list[InspectedPart] | None = None  # the history as it was when review began
        self._banner_part: InspectedPart | None = None
        self._banner_since = 0.0
        self._held: InspectedPart | None = None  # the last bad part, until acknowledged
        self._live = True
        self._dirty = True
        self._history: deque[InspectedPart] = deque(maxlen=HISTORY_LENGTH)
        self._total = self._good = self._bad = self._not_inspected = 0
        self._arrivals: deque[float] = deque()
        self._active: dict[AlarmKind, AlarmRaised] = {}  # raised and not cleared
        self._board = AlarmBoard()  # raised and not acknowledged
        self._stopped = False
        self._source_status: SourceStatus | None = None
        self._shift: ShiftCounts | None = None
        self._parts_since_count = 0
        self._count_requested_at = 0.0
        self.last_acknowledgement: AlarmAcknowledged | None = None
        self._started = False
        self._frozen_gc = False
        self._closing = False
        self._has_closed = False
        self.render_count = 0  # how often the part was actually repainted (tests, diagnostics)

        self.setWindowTitle(title or "inspector — starting…")
        self._font_scale = 1.0
        self.setStyleSheet(theme.STYLE_SHEET)
        self.resize(1440, 900)
        self.setMinimumSize(1000, 720)  # 1366 x 768 less a task bar or menu; nothing is cut above this
        self._build()
        # The pictures (heatmap overlays, thumbnails) are composed on their own thread.
        self.composer = PictureComposer(self)
        for view in (self.part_view, self.held_view):
            view.set_composer(self.composer)
        self.history_strip.set_composer(self.composer)
        self._shortcuts()
        if kiosk:
            self.setWindowState(Qt.WindowState.WindowFullScreen)

        self._repaint_timer = QTimer(self)
        self._repaint_timer.setInterval(REPAINT_INTERVAL_MS)
        self._repaint_timer.timeout.connect(self._on_repaint_timer_timeout)
        self._repaint_timer.start()
        self._review_timer = QTimer(self)
        self._review_timer.setSingleShot(True)
        self._review_timer.setInterval(max(1, round(review_timeout_s * 1000)))
        self._review_timer.timeout.connect(self._on_review_timer_timeout)
        self.review_timeout_s = review_timeout_s
        self.shift_counter = ShiftCounter(shift_refresh_s, self)
        self.shift_counter.counted.connect(self._on_shift_counter_counted)
        self.shift_counter.failed.connect(self._on_shift_counter_failed)

        if controller is not None:
            worker = controller.worker
            worker.inspected.connect(self._on_worker_inspected)
            worker.failed.connect(self._on_worker_failed)
            worker.runtime_started.connect(self._on_worker_runtime_started)
            worker.source_status_changed.connect(self._on_worker_source_status_changed)
            worker.alarm_raised.connect(self._on_worker_alarm_raised)
            worker.alarm_cleared.connect(self._on_worker_alarm_cleared)
            worker.alarm_acknowledged.connect(self._on_worker_alarm_acknowledged)
            worker.stopped.connect(self._on_worker_stopped)
        self.render_now()

    def _shortcuts(self) -> None:
        for key, slot in (
            ("H", self.heatmap_toggle.toggle),
            ("A", self.acknowledge_alarm),
            ("B", self.acknowledge_bad_part),
            ("F11", self.toggle_full_screen),
            (Qt.Key.Key_Space, self.go_live),
            (Qt.Key.Key_Escape, self.go_live),
            (Qt.Key.Key_Left, self.review_older),
            (Qt.Key.Key_Right, self.review_newer),
        ):
            QShortcut(QKeySequence(key), self, activated=slot)

    # -- pages ------------------------------------------------------------------------------------
    def add_page(self, title: str, widget: QWidget, *, shortcut: str | None = None) -> None:
        """Add a page after the live screen, reached by a header button (and ``shortcut``).

        Args:
            title: the button's text, e.g. ``"Supervisor"``.
            widget: the page; the window takes ownership of it.
            shortcut: a key sequence such as ``"F2"`` or ``"Ctrl+H"`` that opens the page.

        Raises:
            ValueError: the page is in the window already, or another page has the shortcut.
        """
        if self.pages.indexOf(widget) != -1:
            raise ValueError(f"page {title!r} was already added")
        self._add_nav_button(title, shortcut)
        self.pages.addWidget(widget)
        self._nav.show()

    def show_live(self) -> None:
        """Return to the live screen (page 0)."""
        self._show_page(0)

    def show_page(self, widget: QWidget) -> None:
        """Open a page added with :meth:`add_page` (or the live page)."""
        index = self.pages.indexOf(widget)
        if index == -1:
            raise ValueError("not a page of this window")
        self._show_page(index)

    @property
    def current_page(self) -> QWidget:
        return self.pages.currentWidget()

    def _show_page(self, index: int) -> None:
        self.pages.setCurrentIndex(index)
        self._nav_buttons[index].setChecked(True)
        if index == 0:
            self._dirty = True

    @Slot(int)
    def _on_nav_button_clicked(self, index: int) -> None:
        self._show_page(index)

    # -- public state ---------------------------------------------------------------------------
    @property
    def controller(self) -> WorkerController | None:
        return self._controller

    @property
    def counters(self) -> Counters:
        """This session's counters (since the window opened)."""
        return Counters(
            total=self._total,
            good=self._good,
            bad=self._bad,
            not_inspected=self._not_inspected,
            parts_per_min=self._parts_per_min(time.monotonic()),
        )

    @property
    def shift_counts(self) -> ShiftCounts | None:
        """The current shift's counts as last read from the log (None until read)."""
        return self._shift

    @property
    def latest_part(self) -> InspectedPart | None:
        return self._latest

    @property
    def shown_part(self) -> InspectedPart | None:
        """The part in the big view (after the last repaint)."""
        return self.part_view.part

    @property
    def held_part(self) -> InspectedPart | None:
        """The last bad part, held beside the live one until acknowledged."""
        return self._held

    @property
    def is_live(self) -> bool:
        return self._live

    @property
    def alarm_text(self) -> str | None:
        """The alarm shown, in plain words with its fix: the newest not acknowledged."""
        entry = self._board.newest
        return entry.text() if entry is not None else None

    @property
    def alarm_detail(self) -> str | None:
        """The technical line of the alarm shown (its tooltip; the log keeps it too)."""
        entry = self._board.newest
        return entry.detail if entry is not None else None

    @property
    def alarms_waiting(self) -> int:
        return len(self._board.entries)

    @property
    def station_state(self) -> tuple[str, str]:
        """(level, words) of the header's state: ok / warn / alarm, e.g. "SOURCE OFFLINE"."""
        return station_state(
            started=self._started,
            stopped=self._stopped,
            active=self._active,
            source_status=self._source_status,
            idle_s=self._idle_s(),
        )

    @property
    def source_status(self) -> SourceStatus | None:
        return self._source_status

    @property
    def delivering(self) -> bool:
        """Current verdicts reach the screen: started, not stopped, the source online."""
        offline = self._source_status is not None and not self._source_status.online
        return (
            self._started and not self._stopped and not offline and not (NOT_DELIVERING & self._active.keys())
        )

    @property
    def worker_status(self) -> str:
        """The status bar's summary of the station's state, worst news first."""
        if self._stopped:
            return "worker STOPPED"
        if AlarmKind.STATION in self._active:
            return "worker FAILED — restarting"
        if AlarmKind.STORAGE in self._active:
            return "storage ALARM — parts wait at the source"
        if self._source_status is not None and not self._source_status.online:
            return "source OFFLINE: reconnecting"  # the message is in the source's label
        return "worker running" if self._started else "worker starting"

    def _pill_alarm(self) -> str | None:
        """What the LIVE pill and button say instead of LIVE, if anything."""
        if self._stopped:
            return "STOPPED"
        offline = self._source_status is not None and not self._source_status.online
        if offline or AlarmKind.SOURCE in self._active:
            return "OFFLINE"
        if AlarmKind.NO_PARTS in self._active:
            return "NO PARTS"
        return "ALARM" if self._active else None

    @property
    def history(self) -> list[InspectedPart]:
        """The history, newest first."""
        return list(reversed(self._history))

    @property
    def shown_history(self) -> list[InspectedPart]:
        """The history as the strip shows it: frozen while reviewing."""
        return list(self._frozen) if self._frozen is not None else self.history

    # -- operator actions -----------------------------------------------------------------------
    def show_part(self, part: InspectedPart) -> None:
        """Stop following the line and show ``part`` until :meth:`go_live` or the timeout."""
        if self._frozen is None:
            self._frozen = self.history
        self._selected = part
        self._live = False
        self._dirty = True
        if self.review_timeout_s > 0:
            self._review_timer.start()
        self.render_now()

    def go_live(self) -> None:
        self._review_timer.stop()
        self._banner_part = None  # the part reviewed is not held on the banner
        self._selected = None
        self._frozen = None
        self._live = True
        self._dirty = True
        self.render_now()

    def review_older(self) -> None:
        """Left arrow: from live, the newest part; in review, the part before the one shown."""
        self._step_review(+1)

    def review_newer(self) -> None:
        """Right arrow: the part after the one shown; past the newest, back to live."""
        self._step_review(-1)

    def _step_review(self, step: int) -> None:
        parts = self.shown_history
        if not parts:
            return
        if self._live or self._selected is None:
            if step > 0:
                self.show_part(parts[0])
            return
        ids = [p.decision.part_id for p in parts]
        current = self._selected.decision.part_id
        index = ids.index(current) + step if current in ids else 0
        if index < 0:
            self.go_live()
        else:
            self.show_part(parts[min(index, len(parts) - 1)])

    def acknowledge_alarm(self) -> None:
        """The operator acknowledged the alarm shown: recorded in the log by the station."""
        entry = self._board.acknowledge()
        if entry is None:
            return
        user = (self.user_provider() if self.user_provider is not None else None) or "operator"
        if entry.kind is not None and self._controller is not None:
            self._controller.worker.acknowledge(entry.kind, user)
        self._dirty = True
        self._render_alarm()

    def acknowledge_bad_part(self) -> None:
        """The held bad part was seen: let it go."""
        if self._held is not None:
            self._held = None
            self._dirty = True
            self.render_now()

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    # -- slots: record only, never paint ---------------------------------------------------------
    @Slot(object)
    def _on_worker_inspected(self, part: InspectedPart) -> None:
        self._total += 1
        verdict = part.decision.verdict
        if verdict is Verdict.GOOD:
            self._good += 1
        elif verdict is Verdict.BAD:
            self._bad += 1
            self._held = part
        else:
            self._not_inspected += 1
        now = time.monotonic()
        self._arrivals.append(now)
        self._history.append(part)
        self._latest, self._latest_at = part, now
        self._parts_since_count += 1
        self._dirty = True
        if part.decision.threshold is not None:
            # A supervisor may change the threshold while the station runs: the newest part's is
            # the one in force, not the one the station started with.
            text = f"threshold  {format_score(part.decision.threshold)}"
            if self._status_threshold.text() != text:
                self._status_threshold.setText(text)
        if self._quit_after is not None and self._total >= self._quit_after and not self._closing:
            self._closing = True
            QTimer.singleShot(0, self.close)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        # The alarm itself comes with alarm_raised; this is for the log.
        log.warning("worker failed: %s", message)

    @Slot(object)
    def _on_worker_alarm_raised(self, event: AlarmRaised) -> None:
        self._active[event.kind] = event
        if self._board.raised(event, datetime.now()) and self.alarm_sound:
            QApplication.beep()
        self._dirty = True
        self._render_alarm()

    @Slot(object)
    def _on_worker_alarm_cleared(self, kind: AlarmKind) -> None:
        self._active.pop(kind, None)
        self._board.cleared(kind, datetime.now())
        self._dirty = True
        self._render_alarm()

    @Slot(object)
    def _on_worker_alarm_acknowledged(self, event: AlarmAcknowledged) -> None:
        self.last_acknowledgement = event
        where = "recorded in the log" if event.recorded else "NOT recorded: the log is unavailable"
        self.statusBar().showMessage(f"alarm acknowledged by {event.user}: {where}", 8000)

    @Slot(object)
    def _on_worker_source_status_changed(self, status: SourceStatus) -> None:
        self._source_status = status
        description = self._info.source_description if self._info else "source"
        state = "online" if status.online else f"OFFLINE: {status.message}"
        self._status_source.setText(f"source  {description}  ·  {state}")
        self._dirty = True
        self._render_alarm()

    @Slot(object)
    def _on_worker_runtime_started(self, info: StationInfo) -> None:
        self._info = info
        if self._fixed_title is None:
            self.setWindowTitle(f"inspector — {info.station_name}")
        self._station_label.setText(info.station_name)
        self._header_source.setText(info.source_description)
        self._status_station.setText(f"station  {info.station_name}")
        self._status_source.setText(f"source  {info.source_description}")
        model = info.model_name + (f"  #{info.short_hash}" if info.short_hash else "")
        self._status_model.setText(f"model  {model}")
        self._status_threshold.setText(f"threshold  {format_score(info.threshold)}")
        self._started = True
        if info.log_url:
            self.shift_counter.watch(info.log_url, info.media_root, info.station_name)
        self._render_alarm()
        if not self._frozen_gc:
            # The model and the runtime live as long as the station: out of the cyclic
            # collector's walks, which stopped every thread for 450-500 ms once early in a run
            # (gui_soak). Once per window (a rebuilt runtime's predecessor, if it holds cycles,
            # is kept: one runtime at most); no forced collection here (one finalised an old
            # test station's objects mid-run and broke the next one's source-offline test).
            self._frozen_gc = True
            gc.freeze()

    @Slot()
    def _on_worker_stopped(self) -> None:
        if self._closing:
            return
        # The loop ended while the window is open (a bug, or a source that ended): say so.
        self._stopped = True
        self._board.stopped(datetime.now())
        self._dirty = True
        self._render_alarm()

    @Slot(object)
    def _on_shift_counter_counted(self, counts: ShiftCounts) -> None:
        self._shift = counts

    @Slot(str)
    def _on_shift_counter_failed(self, message: str) -> None:
        self.counters_caption.setToolTip(f"shift counters could not be read: {message}")

    @Slot(bool)
    def _on_heatmap_toggle_toggled(self, checked: bool) -> None:
        self.part_view.set_heatmap_visible(checked)
        self.held_view.set_heatmap_visible(checked)

    @Slot(object)
    def _on_history_strip_part_selected(self, part: InspectedPart) -> None:
        self.show_part(part)

    @Slot()
    def _on_live_button_clicked(self) -> None:
        self.go_live()

    @Slot()
    def _on_ack_button_clicked(self) -> None:
        self.acknowledge_alarm()

    @Slot()
    def _on_held_ack_button_clicked(self) -> None:
        self.acknowledge_bad_part()

    @Slot()
    def _on_review_timer_timeout(self) -> None:
        if not self._live:
            self.go_live()

    @Slot()
    def _on_repaint_timer_timeout(self) -> None:
        now = time.monotonic()
        # New parts: ask for fresh shift counts, at most once a second (read on their thread).
        if self._parts_since_count and now - self._count_requested_at >= 1.0:
            self._parts_since_count = 0
            self._count_requested_at = now
            self.shift_counter.refresh_now()
        self._render_clock()
        self._render_counters()
        # While not delivering, the banner's age changes every second: repaint it.
        if self._dirty or not self.delivering or self._banner_held(now):
            self.render_now()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        # Larger fonts on a larger window (1920 x 1080, 4K at 100 %), readable from further away.
        scale = theme.font_scale(self.width(), self.height())
        if scale != self._font_scale:
            self._font_scale = scale
            self.setStyleSheet(theme.scaled_style_sheet(scale))
            self.side_panel.setMinimumWidth(round(SIDE_MIN_PX * scale))
            self.side_panel.setMaximumWidth(round(SIDE_MAX_PX * scale))

    # -- shutdown ----------------------------------------------------------------------------------
    def save_screenshot(self, path: Path) -> bool:
        """Render the current state and save the window as a PNG."""
        self.render_now()
        for view in (self.part_view, self.held_view):
            view.ensure_picture()
        self.history_strip.ensure_pictures()
        # Labels that just got longer text ask for a new layout with a posted event; apply it
        # (and nothing else) so the picture does not show them cut off.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = self.grab().save(str(path))
        if not ok:
            log.error("could not save a screenshot to %s", path)
        return ok

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._has_closed:
            event.accept()
            return
        self._closing = True
        if self._screenshot is not None:
            self.save_screenshot(self._screenshot)
        self._repaint_timer.stop()
        self._review_timer.stop()
        self.shift_counter.shutdown()
        self.composer.close()
        if self._controller is not None:
            self._controller.shutdown()
        self._has_closed = True
        event.accept()
        self.closed.emit()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", name, text, default)
        return default
    return max(0.0, value)
