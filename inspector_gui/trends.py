"""The trend page: the current shift's bad rate, score distribution, latency and pace (pyqtgraph).

The figures come from the visual log (``core.reports.trends``, grouped in the database; the
intervals that have ended are read once). A :class:`TrendReader` on its own ``QThread`` opens its own read-only use of the log
and computes them; the GUI thread only plots what it sends. The page asks for fresh figures
every ``refresh_s`` seconds while it is shown, and at once when it is shown; a request made
while the reader is still busy is skipped, so a slow database never queues work up.

Colours are the Okabe-Ito palette (safe under the common colour-vision deficiencies); good and
bad bars also differ in where they sit (bad stacked on top) and the legend names them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from inspector_gui import theme

if TYPE_CHECKING:
    from core.reports.shifts import ShiftPlan
    from core.reports.trends import ShiftTrends
    from core.storage import VisualLog

log = logging.getLogger(__name__)

# Okabe-Ito: distinguishable with deuteranopia, protanopia and tritanopia.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GOOD_COLOUR = OKABE_ITO["sky_blue"]
BAD_COLOUR = OKABE_ITO["vermillion"]
THRESHOLD_COLOUR = OKABE_ITO["yellow"]
LATENCY_COLOUR = OKABE_ITO["orange"]
PACE_COLOUR = OKABE_ITO["bluish_green"]

_LABEL_STYLE = {"color": theme.TEXT_MUTED, "font-size": "12pt"}

DEFAULT_REFRESH_S = 15.0
DEFAULT_BUCKET_S = 600

LogOpener = Callable[[], "VisualLog"]


class TrendReader(QObject):
    """Computes the shift's trends on its own thread; opens the log there on first use.

    Signals:
        computed(ShiftTrends): fresh figures.
        failed(str): the log could not be read (in plain words); tried again at the next refresh.
    """

    computed = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        open_log: LogOpener,
        *,
        bucket_s: int = DEFAULT_BUCKET_S,
        clock: Callable[[], datetime] | None = None,
        plan: ShiftPlan | None = None,
    ) -> None:
        from core.reports.trends import ShiftTrendsFollower

        super().__init__()
        self._open_log = open_log
        self._clock = clock
        # Ended intervals are read once; each refresh reads only the last minutes.
        self._follower = ShiftTrendsFollower(plan=plan, bucket_s=bucket_s)
        self._log: VisualLog | None = None
        self.thread_ids: list[int] = []  # where each refresh ran (tests: never the GUI thread)

    @Slot()
    def refresh(self) -> None:
        self.thread_ids.append(threading.get_ident())
        try:
            if self._log is None:
                self._log = self._open_log()
            now = self._clock() if self._clock is not None else None
            trends = self._follower.read(self._log, now)
        except Exception as exc:  # StorageError and its kind: shown on the page, retried later
            log.warning("trends not refreshed: %s", exc)
            self._close_log()
            self.failed.emit(f"The visual log cannot be read: {exc}")
            return
        self.computed.emit(trends)

    @Slot()
    def close(self) -> None:
        """Close the log; runs on the reader's thread just before it ends."""
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            try:
                self._log.close()
            except Exception:  # closing a broken connection: nothing left to save
                log.debug("closing the trend reader's log failed", exc_info=True)
            self._log = None


class TrendsPage(QWidget):
    """The station window's trend page (``window.add_page("Trends", page)``).

    Args:
        open_log: Opens the station's visual log (called on the reader's thread).
        refresh_s: Seconds between refreshes while the page is shown.
        bucket_s: Length of an interval of the bad-rate, latency and pace plots.
        clock: The moment the trends run to (tests); default the log's clock.
        plan: The shift plan; default the one stored in the log (else the default plan).

    Signals:
        refreshed(ShiftTrends): the page plotted fresh figures.
    """

    refreshed = Signal(object)
    _refresh_requested = Signal()
    _close_requested = Signal()

    def __init__(
        self,
        open_log: LogOpener,
        *,
        refresh_s: float = DEFAULT_REFRESH_S,
        bucket_s: int = DEFAULT_BUCKET_S,
        clock: Callable[[], datetime] | None = None,
        plan: ShiftPlan | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("trendsPage")
        # A page of its own colour, also when shown alone (tests, screenshots).
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(f"QWidget#trendsPage {{ background: {theme.BACKGROUND}; }}")
        self._busy = False
        self._shut_down = False
        self.latest: ShiftTrends | None = None
        self.error: str | None = None

        self._reader = TrendReader(open_log, bucket_s=bucket_s, clock=clock, plan=plan)
        self._thread = QThread()
        self._thread.setObjectName("trend-reader")
        self._reader.moveToThread(self._thread)
        self._refresh_requested.connect(self._reader.refresh)
        # Blocking: shutdown returns only once the log is closed on the reader's own thread.
        self._close_requested.connect(self._reader.close, Qt.ConnectionType.BlockingQueuedConnection)
        self._reader.computed.connect(self._on_reader_computed)
        self._reader.failed.connect(self._on_reader_failed)
        self._thread.start()

        self._timer = QTimer(self)
        self._timer.setInterval(int(refresh_s * 1000))
        self._timer.timeout.connect(self._on_timer_timeout)
        self._build()

    @property
    def reader(self) -> TrendReader:
        return self._reader

    @property
    def reader_thread(self) -> QThread:
        return self._thread

    # -- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        pg.setConfigOptions(antialias=True, background=theme.BACKGROUND, foreground=theme.TEXT)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        self.summary = QLabel("Trends of the current shift: waiting for the visual log…")
        self.summary.setObjectName("trendsSummary")
        self.summary.setStyleSheet(f"color: {theme.TEXT}; font-size: 20px; font-weight: 600;")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        grid = QGridLayout()
        grid.setSpacing(12)
        layout.addLayout(grid, 1)

        self.bad_rate_plot = self._plot("Bad rate per interval", "bad parts", "%", time_axis=True)
        self._bad_rate_bars = pg.BarGraphItem(x=[], height=[], width=1.0, brush=BAD_COLOUR, pen=None)
        self.bad_rate_plot.addItem(self._bad_rate_bars)

        self.score_plot = self._plot("Score distribution", "parts", "", time_axis=False)
        self.score_plot.setLabel("bottom", "score (probability of a defect)", **_LABEL_STYLE)
        self.score_plot.addLegend(offset=(-10, 10), labelTextSize="11pt")
        self._good_bars = pg.BarGraphItem(
            x=[], height=[], width=0.05, brush=GOOD_COLOUR, pen=None, name="good"
        )
        self._bad_bars = pg.BarGraphItem(
            x=[], y0=[], height=[], width=0.05, brush=BAD_COLOUR, pen=None, name="bad"
        )
        self.score_plot.addItem(self._good_bars)
        self.score_plot.addItem(self._bad_bars)
        self.threshold_line = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen(THRESHOLD_COLOUR, width=3, style=Qt.PenStyle.DashLine),
            label="threshold",
            labelOpts={"position": 0.92, "color": THRESHOLD_COLOUR, "fill": theme.BACKGROUND},
        )
        label_font = self.threshold_line.label.textItem.font()
        label_font.setPointSize(12)
        label_font.setBold(True)
        self.threshold_line.label.setFont(label_font)
        self.threshold_line.hide()
        self.score_plot.addItem(self.threshold_line)
        self.score_plot.setXRange(0, 1, padding=0.02)

        self.latency_plot = self._plot("Inspection latency", "latency", "ms", time_axis=True)
        self.latency_plot.addLegend(offset=(10, 10), labelTextSize="11pt")
        self._latency_mean = self.latency_plot.plot(
            [], [], pen=pg.mkPen(LATENCY_COLOUR, width=3), symbol="o", symbolSize=6,
            symbolBrush=LATENCY_COLOUR, name="mean",
        )  # fmt: skip
        self._latency_max = self.latency_plot.plot(
            [], [], pen=pg.mkPen(LATENCY_COLOUR, width=1.5, style=Qt.PenStyle.DotLine), name="longest"
        )

        self.pace_plot = self._plot("Parts per minute", "pace", "parts/min", time_axis=True)
        self._pace = self.pace_plot.plot(
            [], [], pen=pg.mkPen(PACE_COLOUR, width=3), symbol="s", symbolSize=6, symbolBrush=PACE_COLOUR
        )

        grid.addWidget(self.bad_rate_plot, 0, 0)
        grid.addWidget(self.score_plot, 0, 1)
        grid.addWidget(self.latency_plot, 1, 0)
        grid.addWidget(self.pace_plot, 1, 1)

    def _plot(self, title: str, quantity: str, unit: str, *, time_axis: bool) -> pg.PlotWidget:
        axes: dict[str, Any] = {"bottom": pg.DateAxisItem(orientation="bottom")} if time_axis else {}
        plot = pg.PlotWidget(axisItems=axes)
        plot.setTitle(title, color=theme.TEXT, size="14pt")
        plot.setLabel("left", quantity, units=unit or None, **_LABEL_STYLE)
        if time_axis:
            plot.setLabel("bottom", "time of day (local)", **_LABEL_STYLE)
        plot.showGrid(x=False, y=True, alpha=0.25)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        font = plot.getAxis("left").label.font()
        font.setPointSize(11)
        for side in ("left", "bottom"):
            plot.getAxis(side).setTickFont(font)
        plot.setMinimumSize(320, 220)
        return plot

    # -- refreshing ---------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Ask the reader for fresh figures; False when it is still busy with the last request."""
        if self._busy or self._shut_down:
            return False
        self._busy = True
        self._refresh_requested.emit()
        return True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.refresh()
        self._timer.start()

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().hideEvent(event)
        self._timer.stop()  # nobody looks: no queries

    @Slot()
    def _on_timer_timeout(self) -> None:
        self.refresh()

    @Slot(object)
    def _on_reader_computed(self, trends: ShiftTrends) -> None:
        self._busy = False
        self.latest = trends
        self.error = None
        self._plot_trends(trends)
        self.refreshed.emit(trends)

    @Slot(str)
    def _on_reader_failed(self, message: str) -> None:
        self._busy = False
        self.error = message
        self.summary.setText(message)

    def _plot_trends(self, trends: ShiftTrends) -> None:
        buckets = trends.trend.buckets
        width = float(trends.trend.bucket_s)
        starts = [b.start.timestamp() for b in buckets]
        middles = [s + min(width, b.duration_s) / 2 for s, b in zip(starts, buckets, strict=True)]
        rated = [
            (m, 100.0 * b.bad_rate) for m, b in zip(middles, buckets, strict=True) if b.bad_rate is not None
        ]
        self._bad_rate_bars.setOpts(x=[m for m, _ in rated], height=[r for _, r in rated], width=width * 0.85)
        self.bad_rate_plot.setXRange(
            trends.shift.start.timestamp(), trends.shift.end.timestamp(), padding=0.01
        )
        top = max([r for _, r in rated], default=0.0)
        self.bad_rate_plot.setYRange(0, max(10.0, top * 1.15), padding=0)

        scores = trends.trend.scores
        bin_width = 1.0 / scores.bins
        centres = [(a + b) / 2 for a, b in zip(scores.edges, scores.edges[1:], strict=False)]
        self._good_bars.setOpts(x=centres, height=list(scores.good), width=bin_width * 0.9)
        self._bad_bars.setOpts(
            x=centres, y0=list(scores.good), height=list(scores.bad), width=bin_width * 0.9
        )
        if trends.threshold is not None:
            self.threshold_line.show()  # first: a hidden label ignores new text
            self.threshold_line.setValue(trends.threshold)
            self.threshold_line.label.setFormat(f"threshold {trends.threshold:.2f}")
        else:
            self.threshold_line.hide()

        timed = [(m, b) for m, b in zip(middles, buckets, strict=True) if b.latency_mean_ms is not None]
        self._latency_mean.setData([m for m, _ in timed], [b.latency_mean_ms for _, b in timed])
        self._latency_max.setData([m for m, _ in timed], [b.latency_max_ms for _, b in timed])
        self.latency_plot.setXRange(
            trends.shift.start.timestamp(), trends.shift.end.timestamp(), padding=0.01
        )

        self._pace.setData(middles, [b.parts_per_min for b in buckets])
        self.pace_plot.setXRange(trends.shift.start.timestamp(), trends.shift.end.timestamp(), padding=0.01)

        rate = trends.bad_rate
        shift = trends.shift
        span = f"{shift.local_start:%H:%M}–{shift.local_end:%H:%M}"
        shown_rate = "—" if rate is None else f"{100 * rate:.1f} %"
        threshold = "—" if trends.threshold is None else f"{trends.threshold:.2f}"
        self.summary.setText(
            f"Shift {shift.name} ({span}) on {trends.station}: {trends.trend.total} parts, "
            f"bad rate {shown_rate}, threshold {threshold}; intervals of {trends.trend.bucket_s // 60} min; "
            f"updated {time.strftime('%H:%M:%S')}"
        )

    # -- ending -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop refreshing and end the reader's thread (its log closed on that thread)."""
        if self._shut_down:
            return
        self._shut_down = True
        self._timer.stop()
        if self._thread.isRunning():
            # Runs after any refresh in flight, so the log is closed where it was opened.
            self._close_requested.emit()
            self._thread.quit()
            self._thread.wait()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)
