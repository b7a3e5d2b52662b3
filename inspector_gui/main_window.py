"""The operator's window: the newest part, its verdict, the history and the shift counters.

The window shows what the station's run loop says: the source's state, and every alarm until the
loop clears it (source offline, storage unavailable, station restarting). While one is raised
the view does not pass for live news: the LIVE pill and button turn to the alarm, in words.

Parts arrive from the worker as fast as the line runs. ``_on_worker_inspected`` only records
them (counters, history, "newest"); the pixels are drawn by ``_on_repaint_timer_timeout`` at
most 15 times a second, so a burst of parts costs one repaint, not one per part.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from core.common.types import InspectedPart, Verdict
from core.sources.base import SourceStatus
from core.station.events import AlarmKind, AlarmRaised, StationInfo

from . import theme
from .widgets import CounterTile, ElidedLabel, HistoryStrip, PartView, ScoreBar, VerdictBanner, local_time
from .worker import WorkerController

log = logging.getLogger(__name__)

REPAINT_INTERVAL_MS = 100  # 10 Hz: smooth enough for a person, cheap for the GUI thread
HISTORY_LENGTH = 12
RATE_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Counters:
    """The shift counters as shown. ``inspected`` = good + bad; ``total`` includes not inspected."""

    total: int
    good: int
    bad: int
    not_inspected: int
    parts_per_min: float

    @property
    def inspected(self) -> int:
        return self.good + self.bad

    @property
    def yield_pct(self) -> float | None:
        """Good parts as a share of the inspected ones; None before the first verdict."""
        return 100.0 * self.good / self.inspected if self.inspected else None


class StationWindow(QMainWindow):
    """The operator station.

    Args:
        controller: the worker controller whose signals feed the window; the window stops it when
            it closes. None gives an idle window (parts can still be fed to the slots in tests).
        title: the window title; default ``"inspector — <station>"`` once the runtime reports.
        quit_after: close the window after this many parts were received (smoke tests, demo).
        screenshot: save a PNG of the window here just before it closes.

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
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._controller = controller
        self._fixed_title = title
        self._quit_after = quit_after
        self._screenshot = screenshot
        self._info: StationInfo | None = None

        # state written by the slots, read by the repaint timer
        self._latest: InspectedPart | None = None
        self._selected: InspectedPart | None = None  # shown instead of the latest while reviewing
        self._live = True
        self._dirty = True
        self._history: deque[InspectedPart] = deque(maxlen=HISTORY_LENGTH)
        self._total = self._good = self._bad = self._not_inspected = 0
        self._arrivals: deque[float] = deque()
        self._alarms: dict[AlarmKind, str] = {}  # raised and not cleared; the newest last
        self._stopped_alarm: str | None = None  # the loop ended while the window is open
        self._source_status: SourceStatus | None = None
        self._started = False
        self._closing = False
        self._has_closed = False
        self.render_count = 0  # how often the part was actually repainted (tests, diagnostics)

        self.setWindowTitle(title or "inspector — starting…")
        self.setStyleSheet(theme.STYLE_SHEET)
        self.resize(1440, 900)
        self.setMinimumSize(1100, 720)
        self._build()

        self._repaint_timer = QTimer(self)
        self._repaint_timer.setInterval(REPAINT_INTERVAL_MS)
        self._repaint_timer.timeout.connect(self._on_repaint_timer_timeout)
        self._repaint_timer.start()

        if controller is not None:
            worker = controller.worker
            worker.inspected.connect(self._on_worker_inspected)
            worker.failed.connect(self._on_worker_failed)
            worker.runtime_started.connect(self._on_worker_runtime_started)
            worker.source_status_changed.connect(self._on_worker_source_status_changed)
            worker.alarm_raised.connect(self._on_worker_alarm_raised)
            worker.alarm_cleared.connect(self._on_worker_alarm_cleared)
            worker.stopped.connect(self._on_worker_stopped)
        self.render_now()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget(self)
        central.setObjectName("central")
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)

        root.addWidget(self._build_header())

        self.alarm_label = QLabel(self)
        self.alarm_label.setObjectName("alarm")
        self.alarm_label.setWordWrap(True)
        self.alarm_label.hide()
        root.addWidget(self.alarm_label)

        # The live screen is page 0 and the default; other pages (supervisor log-in, threshold,
        # history, trends) are added with add_page. Header and alarm line stay on every page.
        self.pages = QStackedWidget(central)
        self.live_page = QWidget(self.pages)
        self.live_page.setObjectName("livePage")
        live = QVBoxLayout(self.live_page)
        live.setContentsMargins(0, 0, 0, 0)
        live.setSpacing(0)
        body = QHBoxLayout()
        body.setContentsMargins(16, 16, 16, 8)
        body.setSpacing(16)
        body.addWidget(self._build_part_panel(), 1)
        body.addWidget(self._build_side_panel(), 0)
        live.addLayout(body, 1)
        live.addWidget(self._build_history_panel())
        self.pages.addWidget(self.live_page)
        root.addWidget(self.pages, 1)

        status = QStatusBar(self)
        status.setSizeGripEnabled(False)
        self.setStatusBar(status)
        self._status_station = QLabel("station —")
        self._status_source = QLabel("source —")
        self._status_model = QLabel("model —")
        self._status_threshold = QLabel("threshold —")
        for label in (self._status_station, self._status_source, self._status_model, self._status_threshold):
            status.addWidget(label)
        self._status_worker = QLabel("worker starting")
        status.addPermanentWidget(self._status_worker)

    def _build_header(self) -> QFrame:
        header = QFrame(self)
        header.setObjectName("header")
        layout = QHBoxLayout(header)
        layout.setContentsMargins(20, 10, 20, 10)
        layout.setSpacing(16)
        brand = QLabel("INSPECTOR")
        brand.setObjectName("brand")
        self._station_label = QLabel("connecting…")
        self._station_label.setObjectName("stationName")
        self._header_source = ElidedLabel("")
        self._header_source.setObjectName("headerMuted")
        self._clock = QLabel("")
        self._clock.setObjectName("clock")
        # Page navigation: slim buttons in the header, shown once there is more than the live page.
        self._nav = QWidget(header)
        self._nav_layout = QHBoxLayout(self._nav)
        self._nav_layout.setContentsMargins(0, 0, 0, 0)
        self._nav_layout.setSpacing(4)
        self._nav_group = QButtonGroup(self)
        self._nav_group.setExclusive(True)
        self._nav_buttons: list[QPushButton] = []
        self._add_nav_button("Live", "F1")
        self._nav_buttons[0].setChecked(True)
        self._nav.hide()
        layout.addWidget(brand)
        layout.addWidget(self._station_label)
        layout.addWidget(self._header_source, 1)
        layout.addWidget(self._nav)
        layout.addWidget(self._clock)
        return header

    def _add_nav_button(self, title: str, shortcut: str | None) -> QPushButton:
        index = len(self._nav_buttons)
        button = QPushButton(title, self._nav)
        button.setObjectName("nav")
        button.setCheckable(True)
        button.setToolTip(f"{title} ({shortcut})" if shortcut else title)
        button.clicked.connect(partial(self._on_nav_button_clicked, index))
        self._nav_group.addButton(button, index)
        self._nav_layout.addWidget(button)
        self._nav_buttons.append(button)
        if shortcut:
            QShortcut(QKeySequence(shortcut), self, activated=partial(self._on_nav_button_clicked, index))
        return button

    def _build_part_panel(self) -> QFrame:
        panel = QFrame(self)
        panel.setObjectName("panel")
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(14, 10, 14, 14)
        layout.setSpacing(8)
        bar = QHBoxLayout()
        caption = QLabel("PART")
        caption.setObjectName("caption")
        self.heatmap_toggle = QCheckBox("Heatmap")
        self.heatmap_toggle.setChecked(True)
        self.heatmap_toggle.setToolTip("Show where the model saw a defect (H)")
        self.heatmap_toggle.toggled.connect(self._on_heatmap_toggle_toggled)
        bar.addWidget(caption)
        bar.addStretch(1)
        bar.addWidget(self.heatmap_toggle)
        layout.addLayout(bar)
        self.part_view = PartView(panel)
        layout.addWidget(self.part_view, 1)
        # What the part is, under its picture: key over value, four columns.
        details = QGridLayout()
        details.setContentsMargins(4, 4, 4, 0)
        details.setHorizontalSpacing(24)
        details.setVerticalSpacing(0)
        self._detail_values: dict[str, QLabel] = {}
        for column, (key, mono, stretch) in enumerate(
            (("PART", True, 0), ("SOURCE", False, 1), ("TIME", True, 0), ("LATENCY", True, 0))
        ):
            key_label = QLabel(key)
            key_label.setObjectName("detailKey")
            # Only the source (a path or URL) may be shortened; ids and times are shown whole.
            value = ElidedLabel("—") if key == "SOURCE" else QLabel("—")
            value.setObjectName("detailMono" if mono else "detailValue")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            details.addWidget(key_label, 0, column)
            details.addWidget(value, 1, column)
            details.setColumnStretch(column, stretch)
            self._detail_values[key] = value
        layout.addLayout(details)
        QShortcut(QKeySequence("H"), self, activated=self.heatmap_toggle.toggle)
        return panel

    def _build_side_panel(self) -> QWidget:
        side = QWidget(self)
        side.setFixedWidth(440)
        layout = QVBoxLayout(side)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)

        self.verdict_banner = VerdictBanner(side)
        layout.addWidget(self.verdict_banner, 1)  # the banner takes the spare height

        score_panel = QFrame(side)
        score_panel.setObjectName("panel")
        score_layout = QVBoxLayout(score_panel)
        score_layout.setContentsMargins(16, 10, 16, 10)
        score_layout.setSpacing(2)
        caption = QLabel("SCORE  ·  PROBABILITY OF DEFECT")
        caption.setObjectName("caption")
        score_layout.addWidget(caption)
        values = QHBoxLayout()
        self.score_label = QLabel("—")
        self.score_label.setObjectName("scoreValue")
        self.threshold_label = QLabel("threshold —")
        self.threshold_label.setObjectName("thresholdValue")
        values.addWidget(self.score_label)
        values.addStretch(1)
        values.addWidget(self.threshold_label, 0, Qt.AlignmentFlag.AlignBottom)
        score_layout.addLayout(values)
        self.score_bar = ScoreBar(score_panel)
        score_layout.addWidget(self.score_bar)
        layout.addWidget(score_panel)

        counters = QFrame(side)
        counters.setObjectName("panel")
        counter_layout = QVBoxLayout(counters)
        counter_layout.setContentsMargins(12, 10, 12, 12)
        counter_layout.setSpacing(8)
        caption = QLabel("THIS SESSION")
        caption.setObjectName("caption")
        counter_layout.addWidget(caption)
        tiles = QGridLayout()
        tiles.setSpacing(8)
        self.counter_tiles: dict[str, CounterTile] = {
            "inspected": CounterTile("Inspected"),
            "good": CounterTile("Good", theme.GOOD),
            "bad": CounterTile("Bad", theme.BAD),
            "not_inspected": CounterTile("Not inspected", theme.NOT_INSPECTED),
            "yield": CounterTile("Yield"),
            "rate": CounterTile("Parts / min"),
        }
        self.counter_tiles["inspected"].setToolTip("Parts with a verdict (good + bad)")
        self.counter_tiles["yield"].setToolTip("Good parts as a share of the inspected ones")
        self.counter_tiles["rate"].setToolTip("Parts received per minute over the last minute")
        for index, tile in enumerate(self.counter_tiles.values()):
            tiles.addWidget(tile, index // 3, index % 3)
        counter_layout.addLayout(tiles)
        layout.addWidget(counters)
        return side

    def _build_history_panel(self) -> QFrame:
        panel = QFrame(self)
        panel.setObjectName("panel")
        outer = QVBoxLayout(panel)
        outer.setContentsMargins(14, 8, 14, 10)
        outer.setSpacing(6)
        caption = QLabel("HISTORY  ·  NEWEST FIRST  ·  CLICK TO REVIEW")
        caption.setObjectName("caption")
        outer.addWidget(caption)
        row = QHBoxLayout()
        row.setSpacing(12)
        self.history_strip = HistoryStrip(HISTORY_LENGTH, panel)
        self.history_strip.part_selected.connect(self._on_history_strip_part_selected)
        row.addWidget(self.history_strip, 1)
        self.live_button = QPushButton("●  LIVE")
        self.live_button.setObjectName("live")
        self.live_button.setMinimumSize(150, 64)
        self.live_button.setToolTip("Follow the line again (Space)")
        self.live_button.clicked.connect(self._on_live_button_clicked)
        row.addWidget(self.live_button, 0, Qt.AlignmentFlag.AlignVCenter)
        outer.addLayout(row)
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.go_live)
        wrapper = QFrame(self)
        wrapper_layout = QVBoxLayout(wrapper)
        wrapper_layout.setContentsMargins(16, 0, 16, 12)
        wrapper_layout.addWidget(panel)
        return wrapper

    # -- pages ------------------------------------------------------------------------------------
    def add_page(self, title: str, widget: QWidget, *, shortcut: str | None = None) -> None:
        """Add a page after the live screen, reached by a header button (and ``shortcut``).

        Args:
            title: the button's text, e.g. ``"Supervisor"``.
            widget: the page; the window takes ownership of it.
            shortcut: a key sequence such as ``"F2"`` or ``"Ctrl+H"`` that opens the page.
        """
        if self.pages.indexOf(widget) != -1:
            raise ValueError(f"page {title!r} was already added")
        self.pages.addWidget(widget)
        self._add_nav_button(title, shortcut)
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
        return Counters(
            total=self._total,
            good=self._good,
            bad=self._bad,
            not_inspected=self._not_inspected,
            parts_per_min=self._parts_per_min(time.monotonic()),
        )

    @property
    def latest_part(self) -> InspectedPart | None:
        return self._latest

    @property
    def shown_part(self) -> InspectedPart | None:
        """The part in the big view (after the last repaint)."""
        return self.part_view.part

    @property
    def is_live(self) -> bool:
        return self._live

    @property
    def alarm_text(self) -> str | None:
        """The alarm shown: the newest one raised and not cleared."""
        if self._stopped_alarm is not None:
            return self._stopped_alarm
        return next(reversed(self._alarms.values()), None)

    @property
    def source_status(self) -> SourceStatus | None:
        return self._source_status

    @property
    def worker_status(self) -> str:
        """The status bar's summary of the station's state, worst news first."""
        if self._stopped_alarm is not None:
            return "worker STOPPED"
        if AlarmKind.STATION in self._alarms:
            return "worker FAILED — restarting"
        if AlarmKind.STORAGE in self._alarms:
            return "storage ALARM — parts wait at the source"
        if self._source_status is not None and not self._source_status.online:
            return f"source OFFLINE: {self._source_status.message}"
        return "worker running" if self._started else "worker starting"

    def _pill_alarm(self) -> str | None:
        """What the LIVE pill and button say instead of LIVE, if anything."""
        if self._stopped_alarm is not None:
            return "STOPPED"
        offline = self._source_status is not None and not self._source_status.online
        if offline or AlarmKind.SOURCE in self._alarms:
            return "OFFLINE"
        return "ALARM" if self._alarms else None

    @property
    def history(self) -> list[InspectedPart]:
        """The history, newest first."""
        return list(reversed(self._history))

    def show_part(self, part: InspectedPart) -> None:
        """Stop following the line and show ``part`` until :meth:`go_live`."""
        self._selected = part
        self._live = False
        self._dirty = True
        self.render_now()

    def go_live(self) -> None:
        self._selected = None
        self._live = True
        self._dirty = True
        self.render_now()

    # -- slots: record only, never paint ---------------------------------------------------------
    @Slot(object)
    def _on_worker_inspected(self, part: InspectedPart) -> None:
        self._total += 1
        verdict = part.decision.verdict
        if verdict is Verdict.GOOD:
            self._good += 1
        elif verdict is Verdict.BAD:
            self._bad += 1
        else:
            self._not_inspected += 1
        now = time.monotonic()
        self._arrivals.append(now)
        self._history.append(part)
        self._latest = part
        self._dirty = True
        if self._quit_after is not None and self._total >= self._quit_after and not self._closing:
            self._closing = True
            QTimer.singleShot(0, self.close)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        # The alarm itself comes with alarm_raised; this is for the log.
        log.warning("worker failed: %s", message)

    @Slot(object)
    def _on_worker_alarm_raised(self, event: AlarmRaised) -> None:
        self._alarms.pop(event.kind, None)  # raised again: it becomes the newest
        self._alarms[event.kind] = f"⚠  {datetime.now():%H:%M:%S}   {event.message}"
        self._dirty = True
        self._render_alarm()

    @Slot(object)
    def _on_worker_alarm_cleared(self, kind: AlarmKind) -> None:
        self._alarms.pop(kind, None)
        self._dirty = True
        self._render_alarm()

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
        self._status_threshold.setText(f"threshold  {_format_score(info.threshold)}")
        self._started = True
        self._render_alarm()

    @Slot()
    def _on_worker_stopped(self) -> None:
        if self._closing:
            return
        # The loop ended while the window is open (a bug, or a source that ended): say so.
        self._stopped_alarm = f"⚠  {datetime.now():%H:%M:%S}   Inspection stopped: restart the station"
        self._dirty = True
        self._render_alarm()

    @Slot(bool)
    def _on_heatmap_toggle_toggled(self, checked: bool) -> None:
        self.part_view.set_heatmap_visible(checked)

    @Slot(object)
    def _on_history_strip_part_selected(self, part: InspectedPart) -> None:
        self.show_part(part)

    @Slot()
    def _on_live_button_clicked(self) -> None:
        self.go_live()

    @Slot()
    def _on_repaint_timer_timeout(self) -> None:
        self._render_clock()
        self._render_counters()
        if self._dirty:
            self.render_now()

    # -- painting ----------------------------------------------------------------------------------
    def render_now(self) -> None:
        """Draw the current state now (the timer calls this; tests and screenshots may too)."""
        self._dirty = False
        part = self._latest if self._live else self._selected
        if part is not self.part_view.part:
            self.render_count += 1
        self.part_view.set_part(part)
        self.part_view.set_live(self._live)
        alarm = self._pill_alarm()
        self.part_view.set_alarm(alarm)
        self._render_verdict(part)
        self._render_clock()
        self._render_counters()
        self._render_alarm()
        self.history_strip.set_parts(
            self.history, None if self._live or part is None else part.decision.part_id
        )
        if not self._live:
            self.live_button.setText("▶  GO LIVE")
            self.live_button.setProperty("live", "false")
        elif alarm is not None:
            self.live_button.setText(f"⚠  {alarm}")
            self.live_button.setProperty("live", "alarm")
        else:
            self.live_button.setText("●  LIVE")
            self.live_button.setProperty("live", "true")
        self.live_button.style().unpolish(self.live_button)
        self.live_button.style().polish(self.live_button)

    def _render_verdict(self, part: InspectedPart | None) -> None:
        if part is None:
            self.verdict_banner.set_verdict(None, "No part received yet")
            self.score_bar.set_values(
                None, self._info.threshold if self._info else None, theme.verdict_colour(None)
            )
            self.score_label.setText("—")
            threshold = self._info.threshold if self._info else None
            self.threshold_label.setText(f"threshold {_format_score(threshold)}")
            for value in self._detail_values.values():
                value.setText("—")
            return
        decision = part.decision
        threshold = decision.threshold
        if threshold is None and self._info is not None:
            threshold = self._info.threshold
        reason = decision.reason
        if reason is None and decision.score is not None and decision.verdict is not Verdict.NOT_INSPECTED:
            relation = "≥" if decision.verdict is Verdict.BAD else "<"
            reason = f"score {_format_score(decision.score)} {relation} threshold {_format_score(threshold)}"
        self.verdict_banner.set_verdict(decision.verdict, reason)
        colour = theme.verdict_colour(decision.verdict)
        self.score_bar.set_values(decision.score, threshold, colour)
        self.score_label.setText(_format_score(decision.score))
        self.score_label.setStyleSheet(f"color: {colour.name()};")
        self.threshold_label.setText(f"threshold {_format_score(threshold)}")
        self._detail_values["PART"].setText(decision.part_id)
        self._detail_values["SOURCE"].setText(decision.source_ref)
        self._detail_values["TIME"].setText(f"{local_time(decision.created_at):%Y-%m-%d  %H:%M:%S}")
        latency = "—" if decision.latency_ms is None else f"{decision.latency_ms:.1f} ms"
        self._detail_values["LATENCY"].setText(latency)

    def _render_clock(self) -> None:
        text = f"{datetime.now():%H:%M:%S}"
        if text != self._clock.text():
            self._clock.setText(text)

    def _render_counters(self) -> None:
        counters = self.counters
        tiles = self.counter_tiles
        tiles["inspected"].set_value(f"{counters.inspected}")
        tiles["good"].set_value(f"{counters.good}")
        tiles["bad"].set_value(f"{counters.bad}")
        tiles["not_inspected"].set_value(f"{counters.not_inspected}")
        yield_pct = counters.yield_pct
        if yield_pct is None:
            tiles["yield"].set_value("—")
        else:  # "100%" rather than "100.0%": the tile is sized for five characters
            tiles["yield"].set_value("100%" if yield_pct >= 100 else f"{yield_pct:.1f}%")
        tiles["rate"].set_value("—" if counters.total < 2 else f"{counters.parts_per_min:.0f}")

    def _render_alarm(self) -> None:
        alarm = self.alarm_text
        if alarm:
            if self.alarm_label.text() != alarm:
                self.alarm_label.setText(alarm)
            self.alarm_label.show()
        elif self.alarm_label.isVisible() or self.alarm_label.text():
            self.alarm_label.clear()
            self.alarm_label.hide()
        status = self.worker_status
        if self._status_worker.text() != status:
            self._status_worker.setText(status)

    def _parts_per_min(self, now: float) -> float:
        arrivals = self._arrivals
        while arrivals and now - arrivals[0] > RATE_WINDOW_S:
            arrivals.popleft()
        if len(arrivals) < 2:
            return 0.0
        # Measured from the first part in the window to *now*, so the rate falls when the line stops.
        span_s = max(now - arrivals[0], 1e-3)
        return (len(arrivals) - 1) / span_s * 60.0

    # -- shutdown ----------------------------------------------------------------------------------
    def save_screenshot(self, path: Path) -> bool:
        """Render the current state and save the window as a PNG."""
        self.render_now()
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
        if self._controller is not None:
            self._controller.shutdown()
        self._has_closed = True
        event.accept()
        self.closed.emit()


def _format_score(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.3f}"
