"""The history page: the whole visual log, filtered, sorted and paged, with thumbnails.

Filters: time (any, this shift, the previous shift, last 24 h, last 7 days, a range), station,
verdict (not inspected is a verdict here: the parts the model never judged), score band, review
state, model; and the order. The table shows one keyset page (see ``history_model``); the page
bar and the keyboard move between pages: PgDn on the last row and Ctrl+PgDn the next page, PgUp
on the first row and Ctrl+PgUp the previous one, Ctrl+Home the first, Ctrl+End the last; Enter
(or a double click) opens the part in the detail view.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import QDateTime, QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.common.types import Verdict
from core.reports.shifts import DEFAULT_PLAN, ShiftPlan
from core.storage.history import HistoryQuery, HistorySort, ReviewState

from .history_model import PAGE_SIZE, THUMB_PX, HistoryModel, LogInfo, ReaderThread
from .review_style import REVIEW_STYLE

TIME_CHOICES = ("Any time", "This shift", "Previous shift", "Last 24 h", "Last 7 days", "Range")
SORTS = (
    ("Newest first", HistorySort.NEWEST),
    ("Oldest first", HistorySort.OLDEST),
    ("Highest score", HistorySort.SCORE_HIGH),
    ("Lowest score", HistorySort.SCORE_LOW),
)
VERDICTS = (
    ("All verdicts", None),
    ("Good", (Verdict.GOOD,)),
    ("Bad", (Verdict.BAD,)),
    ("Not inspected", (Verdict.NOT_INSPECTED,)),
    ("Good or bad (inspected)", (Verdict.GOOD, Verdict.BAD)),
)
REVIEWS = (
    ("Any review state", None),
    ("Not reviewed", ReviewState.UNREVIEWED),
    ("Reviewed", ReviewState.REVIEWED),
    ("Confirmed", ReviewState.CONFIRMED),
    ("Overridden", ReviewState.OVERRIDDEN),
)


class HistoryView(QWidget):
    """The supervisor's history page (``window.add_page("History", view)``).

    Args:
        reader: The reader thread shared with the detail view.
        clock: Now, UTC (tests); default the wall clock.

    Signals:
        part_opened(str): the user opened a part (Enter or double click): its part id.
    """

    part_opened = Signal(str)
    _info_requested = Signal()

    def __init__(
        self,
        reader: ReaderThread,
        *,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], datetime] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("historyView")
        self.setStyleSheet(REVIEW_STYLE)
        self._clock = clock
        self._plan = ShiftPlan.parse(DEFAULT_PLAN)
        self.model = HistoryModel(reader, page_size=page_size, parent=self)
        # Filters changed in quick succession make one query, not one per click or keystroke.
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.apply_filters)
        self._build()
        self.model.page_changed.connect(self._on_model_page_changed)
        self.model.count_changed.connect(self._on_model_count_changed)
        self.model.failed.connect(self._on_model_failed)
        reader.reader.info_loaded.connect(self._on_reader_info_loaded)
        self._info_requested.connect(reader.reader.load_info)
        self._started = False

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        bar = QHBoxLayout()
        bar.setSpacing(8)
        self.time_choice = QComboBox()
        self.time_choice.addItems(TIME_CHOICES)
        self.since_edit = QDateTimeEdit()
        self.until_edit = QDateTimeEdit()
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.setDateTime(QDateTime.currentDateTime())
            edit.setVisible(False)
        self.since_edit.setDateTime(QDateTime.currentDateTime().addDays(-1))
        self.station_choice = QComboBox()
        self.station_choice.addItem("All stations", None)
        self.verdict_choice = QComboBox()
        for text, value in VERDICTS:
            self.verdict_choice.addItem(text, value)
        self.score_min = QDoubleSpinBox()
        self.score_max = QDoubleSpinBox()
        for spin, value in ((self.score_min, 0.0), (self.score_max, 1.0)):
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(value)
        self.review_choice = QComboBox()
        for text, value in REVIEWS:
            self.review_choice.addItem(text, value)
        self.model_choice = QComboBox()
        self.model_choice.addItem("All models", None)
        self.sort_choice = QComboBox()
        for text, value in SORTS:
            self.sort_choice.addItem(text, value)
        score_label = QLabel("Score")
        score_label.setObjectName("headerMuted")
        dash = QLabel("–")
        for widget in (
            self.time_choice, self.since_edit, self.until_edit, self.station_choice, self.verdict_choice,
            score_label, self.score_min, dash, self.score_max, self.review_choice, self.model_choice,
            self.sort_choice,
        ):  # fmt: skip
            bar.addWidget(widget)
        bar.addStretch(1)
        layout.addLayout(bar)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB_PX + 6)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((THUMB_PX + 10, 170, 110, 130, 80, 90, 120, 160)):
            self.table.setColumnWidth(column, width)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        self.table.installEventFilter(self)
        layout.addWidget(self.table, 1)

        pager = QHBoxLayout()
        self.first_button = QPushButton("« First")
        self.previous_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.last_button = QPushButton("Last »")
        self.first_button.clicked.connect(self.model.first_page)
        self.previous_button.clicked.connect(self.model.previous_page)
        self.next_button.clicked.connect(self.model.next_page)
        self.last_button.clicked.connect(self.model.last_page)
        self.status = QLabel("Loading…")
        self.status.setObjectName("headerMuted")
        pager.addWidget(self.first_button)
        pager.addWidget(self.previous_button)
        pager.addWidget(self.next_button)
        pager.addWidget(self.last_button)
        pager.addSpacing(16)
        pager.addWidget(self.status, 1)
        layout.addLayout(pager)

        for key, slot in (
            ("Ctrl+PgDown", self.model.next_page),
            ("Ctrl+PgUp", self.model.previous_page),
            ("Ctrl+Home", self.model.first_page),
            ("Ctrl+End", self.model.last_page),
            ("F5", self.model.refresh),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        self.time_choice.currentIndexChanged.connect(self._on_time_choice_changed)
        for combo in (
            self.station_choice,
            self.verdict_choice,
            self.review_choice,
            self.model_choice,
            self.sort_choice,
        ):
            combo.currentIndexChanged.connect(self._debounce.start)
        for spin in (self.score_min, self.score_max):
            spin.valueChanged.connect(self._debounce.start)
        for edit in (self.since_edit, self.until_edit):
            edit.dateTimeChanged.connect(self._debounce.start)
        self._update_buttons()

    @property
    def plan(self) -> ShiftPlan:
        """The shift plan the time filter uses (the log's, once read)."""
        return self._plan

    # -- filters ------------------------------------------------------------------------------

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)  # type: ignore[arg-type]
        if not self._started:
            self.start()
        elif self.model.page_number == 1:
            self.model.refresh()  # back on the page: the newest parts, unless the user paged away

    def start(self) -> None:
        """Ask for the filter choices and the first page (once; showing the page does it)."""
        if not self._started:
            self._started = True
            self._info_requested.emit()
            self.apply_filters()

    def _now(self) -> datetime:
        return self._clock() if self._clock is not None else datetime.now(UTC)

    def current_query(self) -> HistoryQuery:
        """The query the filter bar describes.

        Raises:
            ValueError: The filters contradict each other (a range that ends before it starts).
        """
        since = until = None
        choice = self.time_choice.currentText()
        now = self._now()
        if choice == "This shift":
            shift = self._plan.shift_at(now)
            since, until = shift.start, shift.end
        elif choice == "Previous shift":
            shift = self._plan.previous(self._plan.shift_at(now))
            since, until = shift.start, shift.end
        elif choice == "Last 24 h":
            since = now - timedelta(hours=24)
        elif choice == "Last 7 days":
            since = now - timedelta(days=7)
        elif choice == "Range":
            since = self.since_edit.dateTime().toPython().astimezone(UTC)  # type: ignore[union-attr]
            until = self.until_edit.dateTime().toPython().astimezone(UTC)  # type: ignore[union-attr]
            if until <= since:
                raise ValueError("the range ends before it starts")
        station = self.station_choice.currentData()
        low, high = self.score_min.value(), self.score_max.value()
        return HistoryQuery(
            since=since,
            until=until,
            stations=(station,) if station else None,
            verdicts=self.verdict_choice.currentData(),
            score_min=low if low > 0.0 else None,
            score_max=high if high < 1.0 else None,
            review=self.review_choice.currentData(),
            model_hash=self.model_choice.currentData(),
            sort=self.sort_choice.currentData(),
        )

    @Slot()
    def apply_filters(self) -> None:
        self._debounce.stop()
        try:
            query = self.current_query()
        except ValueError as exc:
            self.status.setText(f"⚠ {exc}")
            return
        self.status.setText("Loading…")
        self.model.set_query(query)

    @Slot(int)
    def _on_time_choice_changed(self, _index: int) -> None:
        ranged = self.time_choice.currentText() == "Range"
        self.since_edit.setVisible(ranged)
        self.until_edit.setVisible(ranged)
        self._debounce.start()

    @Slot(object)
    def _on_reader_info_loaded(self, info: LogInfo) -> None:
        if info.shifts:
            self._plan = ShiftPlan.from_definitions(info.shifts)
        for combo, items in (
            (self.station_choice, [(name, name) for name in info.stations]),
            (self.model_choice, [(m.name or m.hash[:12], m.hash) for m in info.models]),
        ):
            combo.blockSignals(True)  # filling the choices is not a filter change
            current = combo.currentData()
            while combo.count() > 1:
                combo.removeItem(1)
            for text, value in items:
                combo.addItem(text, value)
            found = combo.findData(current)
            combo.setCurrentIndex(max(0, found))
            combo.blockSignals(False)

    # -- pages ----------------------------------------------------------------------------------

    @Slot()
    def _on_model_page_changed(self) -> None:
        self._update_buttons()
        self._update_status()
        if self.model.rowCount() and self.table.hasFocus():
            self.table.selectRow(self._select_after_page)
        self._select_after_page = 0

    _select_after_page = 0

    @Slot(int)
    def _on_model_count_changed(self, _total: int) -> None:
        self._update_status()

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        self.status.setText(f"⚠ The visual log cannot be read: {message}")

    def _update_status(self) -> None:
        rows = self.model.rowCount()
        total = self.model.total
        number = self.model.page_number
        total_text = "counting…" if total is None else f"{total:,} matching"
        if not rows:
            self.status.setText(
                "No part matches these filters" if total == 0 or total is None else total_text
            )
            return
        if number is not None:
            start = (number - 1) * self.model.page_size + 1
            where = f"rows {start:,}–{start + rows - 1:,}"
        else:
            where = f"{rows} rows" + (
                " (last page)" if self.model.page and not self.model.page.has_next else ""
            )
        self.status.setText(f"{where} of {total_text}")

    def _update_buttons(self) -> None:
        page = self.model.page
        self.previous_button.setEnabled(bool(page and page.has_previous))
        self.first_button.setEnabled(bool(page and page.has_previous))
        self.next_button.setEnabled(bool(page and page.has_next))
        self.last_button.setEnabled(bool(page and page.has_next))

    # -- keyboard ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.table and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            row = self.table.currentIndex().row()
            last = self.model.rowCount() - 1
            page = self.model.page
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._open_row(row)
                return True
            if event.key() == Qt.Key.Key_PageDown and row == last and page and page.has_next:
                self._select_after_page = 0
                self.model.next_page()
                return True
            if event.key() == Qt.Key.Key_PageUp and row <= 0 and page and page.has_previous:
                self._select_after_page = max(0, self.model.page_size - 1)
                self.model.previous_page()
                return True
        return super().eventFilter(watched, event)

    @Slot(object)
    def _on_table_double_clicked(self, index: object) -> None:
        self._open_row(index.row())  # type: ignore[attr-defined]

    def _open_row(self, row: int) -> None:
        found = self.model.row_at(row)
        if found is not None:
            self.part_opened.emit(found.decision.part_id)

    def shutdown(self) -> None:
        """Nothing of its own to stop: the reader belongs to the workspace."""
        self._debounce.stop()
