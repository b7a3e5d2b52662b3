"""How the live screen is laid out: header with the station's state, the alarm bar, the part
(with the last bad part held beside it), verdict, score and shift counters, the history strip.

A mixin of ``StationWindow``: it builds the widgets and keeps them as attributes; the window's
slots and painting live in ``main_window``. Sizes are chosen to fit 1366 x 768 without anything
running off-screen, and to grow with the window on 1920 x 1080 and 4K (the part view takes the
spare room).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .live_history import HistoryStrip
from .widgets import CounterTile, ElidedLabel, PartView, ScoreBar, VerdictBanner

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

HISTORY_LENGTH = 12
SIDE_MIN_PX, SIDE_MAX_PX = 350, 480  # the verdict column, at the style sheet's 1x (grows with it)


class LiveLayout:
    """Builds the live screen into a ``QMainWindow`` (``self``)."""

    def _build(self) -> None:
        window = self._window()
        central = QWidget(window)
        central.setObjectName("central")
        window.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_header())
        root.addWidget(self._build_alarm_bar())

        # The live screen is page 0 and the default; other pages (supervisor log-in, threshold,
        # history, trends) are added with add_page. Header and alarm bar stay on every page.
        self.pages = QStackedWidget(central)
        self.live_page = QWidget(self.pages)
        self.live_page.setObjectName("livePage")
        live = QVBoxLayout(self.live_page)
        live.setContentsMargins(0, 0, 0, 0)
        live.setSpacing(0)
        body = QHBoxLayout()
        body.setContentsMargins(12, 10, 12, 6)
        body.setSpacing(12)
        body.addWidget(self._build_part_panel(), 1)
        body.addWidget(self._build_side_panel(), 0)
        live.addLayout(body, 1)
        live.addWidget(self._build_history_panel())
        self.pages.addWidget(self.live_page)
        root.addWidget(self.pages, 1)

        status = QStatusBar(window)
        status.setSizeGripEnabled(False)
        window.setStatusBar(status)
        self._status_station = QLabel("station —")
        self._status_source = ElidedLabel("source —")  # an offline message can be long
        self._status_model = QLabel("model —")
        self._status_threshold = QLabel("threshold —")
        for label in (self._status_station, self._status_source, self._status_model, self._status_threshold):
            status.addWidget(label, 1 if label is self._status_source else 0)
        self._status_worker = QLabel("worker starting")
        status.addPermanentWidget(self._status_worker)

    def _window(self) -> QMainWindow:
        return self  # type: ignore[return-value]

    def _build_header(self) -> QFrame:
        window = self._window()
        header = QFrame(window)
        header.setObjectName("header")
        layout = QHBoxLayout(header)
        layout.setContentsMargins(16, 8, 16, 8)
        layout.setSpacing(14)
        brand = QLabel("INSPECTOR")
        brand.setObjectName("brand")
        self._station_label = QLabel("connecting…")
        self._station_label.setObjectName("stationName")
        # The station's state in one or two words, always visible, on every page.
        self.state_label = QLabel("STARTING")
        self.state_label.setObjectName("statePill")
        self.state_label.setProperty("level", "warn")
        self._header_source = ElidedLabel("")
        self._header_source.setObjectName("headerMuted")
        self._clock = QLabel("")
        self._clock.setObjectName("clock")
        # Page navigation: slim buttons, shown once there is more than the live page.
        self._nav = QWidget(header)
        self._nav_layout = QHBoxLayout(self._nav)
        self._nav_layout.setContentsMargins(0, 0, 0, 0)
        self._nav_layout.setSpacing(4)
        self._nav_group = QButtonGroup(window)
        self._nav_group.setExclusive(True)
        self._nav_buttons: list[QPushButton] = []
        self._nav_shortcuts: dict[str, str] = {}
        self._add_nav_button("Live", "F1")
        self._nav_buttons[0].setChecked(True)
        self._nav.hide()
        layout.addWidget(brand)
        layout.addWidget(self._station_label)
        layout.addWidget(self.state_label)
        layout.addWidget(self._header_source, 1)
        layout.addWidget(self._nav)
        layout.addWidget(self._clock)
        return header

    def _add_nav_button(self, title: str, shortcut: str | None) -> QPushButton:
        if shortcut:
            # Two pages on one key: Qt would open neither (an ambiguous shortcut), silently.
            key = QKeySequence(shortcut).toString()
            if key in self._nav_shortcuts:
                raise ValueError(f"{shortcut} already opens the {self._nav_shortcuts[key]} page")
            self._nav_shortcuts[key] = title
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
            QShortcut(
                QKeySequence(shortcut), self._window(), activated=partial(self._on_nav_button_clicked, index)
            )
        return button

    def _build_alarm_bar(self) -> QFrame:
        bar = QFrame(self._window())
        bar.setObjectName("alarmBar")
        layout = QHBoxLayout(bar)
        layout.setContentsMargins(16, 6, 12, 6)
        layout.setSpacing(12)
        self.alarm_label = QLabel(bar)
        self.alarm_label.setObjectName("alarm")
        self.alarm_label.setWordWrap(True)
        self.alarm_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.alarm_more = QLabel(bar)
        self.alarm_more.setObjectName("alarmMore")
        self.ack_button = QPushButton("ACKNOWLEDGE  (A)", bar)
        self.ack_button.setObjectName("ack")
        self.ack_button.setToolTip("Acknowledge this alarm (A); it is recorded in the log with your name")
        self.ack_button.clicked.connect(self._on_ack_button_clicked)
        layout.addWidget(self.alarm_label, 1)
        layout.addWidget(self.alarm_more)
        layout.addWidget(self.ack_button, 0, Qt.AlignmentFlag.AlignVCenter)
        bar.hide()
        self.alarm_bar = bar
        return bar

    def _build_part_panel(self) -> QFrame:
        window = self._window()
        panel = QFrame(window)
        panel.setObjectName("panel")
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(6)
        bar = QHBoxLayout()
        caption = QLabel("PART")
        caption.setObjectName("caption")
        self.heatmap_toggle = QCheckBox("Heatmap  (H)")
        self.heatmap_toggle.setChecked(True)
        self.heatmap_toggle.setToolTip("Show where the model saw signs of a defect, scaled by its score (H)")
        self.heatmap_toggle.toggled.connect(self._on_heatmap_toggle_toggled)
        bar.addWidget(caption)
        bar.addStretch(1)
        bar.addWidget(self.heatmap_toggle)
        layout.addLayout(bar)
        views = QHBoxLayout()
        views.setSpacing(10)
        self.part_view = PartView(panel)
        views.addWidget(self.part_view, 3)
        views.addWidget(self._build_held_panel(panel), 2)
        layout.addLayout(views, 1)
        # What the part is, under its picture: key over value, four columns.
        details = QGridLayout()
        details.setContentsMargins(4, 2, 4, 0)
        details.setHorizontalSpacing(20)
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
        return panel

    def _build_held_panel(self, parent: QWidget) -> QFrame:
        """The last bad part, held beside the live one until the operator acknowledges it."""
        held = QFrame(parent)
        held.setObjectName("heldPanel")
        layout = QVBoxLayout(held)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        caption = QLabel("LAST BAD PART  ·  HELD")
        caption.setObjectName("heldCaption")
        self.held_info = QLabel("")
        self.held_info.setObjectName("heldInfo")
        self.held_info.setWordWrap(True)
        self.held_view = PartView(held)
        self.held_view.setMinimumSize(200, 150)
        self.held_view.show_pill = self.held_view.show_legend = False  # the live view has them
        self.held_ack_button = QPushButton("SEEN  (B)")
        self.held_ack_button.setObjectName("heldAck")
        self.held_ack_button.setToolTip("The bad part was seen and taken off the line (B)")
        self.held_ack_button.clicked.connect(self._on_held_ack_button_clicked)
        layout.addWidget(caption)
        layout.addWidget(self.held_view, 1)
        layout.addWidget(self.held_info)
        layout.addWidget(self.held_ack_button)
        held.hide()
        self.held_panel = held
        return held

    def _build_side_panel(self) -> QWidget:
        side = QWidget(self._window())
        side.setMinimumWidth(SIDE_MIN_PX)
        side.setMaximumWidth(SIDE_MAX_PX)
        self.side_panel = side
        side.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(side)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)

        self.verdict_banner = VerdictBanner(side)
        layout.addWidget(self.verdict_banner, 1)  # the banner takes the spare height

        score_panel = QFrame(side)
        score_panel.setObjectName("panel")
        score_layout = QVBoxLayout(score_panel)
        score_layout.setContentsMargins(14, 6, 14, 6)
        score_layout.setSpacing(0)
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
        counter_layout.setContentsMargins(10, 6, 10, 8)
        counter_layout.setSpacing(6)
        self.counters_caption = QLabel("THIS SESSION")
        self.counters_caption.setObjectName("caption")
        counter_layout.addWidget(self.counters_caption)
        tiles = QGridLayout()
        tiles.setSpacing(6)
        self.counter_tiles: dict[str, CounterTile] = {
            "inspected": CounterTile("Inspected"),
            "good": CounterTile("✓ Good", theme.GOOD),
            "bad": CounterTile("✗ Bad", theme.BAD),
            "not_inspected": CounterTile("? Not insp.", theme.NOT_INSPECTED),
            "yield": CounterTile("Yield"),
            "rate": CounterTile("Parts/min"),
        }
        self.counter_tiles["inspected"].setToolTip("Parts with a verdict (good + bad)")
        self.counter_tiles["not_inspected"].setToolTip("Parts that could not be inspected")
        self.counter_tiles["yield"].setToolTip("Good parts as a share of the inspected ones")
        self.counter_tiles["rate"].setToolTip("Parts received per minute over the last minute")
        for index, tile in enumerate(self.counter_tiles.values()):
            tiles.addWidget(tile, index // 3, index % 3)
        counter_layout.addLayout(tiles)
        self.session_label = QLabel("")
        self.session_label.setObjectName("sessionLine")
        counter_layout.addWidget(self.session_label)
        layout.addWidget(counters)
        return side

    def _build_history_panel(self) -> QFrame:
        window = self._window()
        panel = QFrame(window)
        panel.setObjectName("panel")
        outer = QVBoxLayout(panel)
        outer.setContentsMargins(12, 6, 12, 8)
        outer.setSpacing(4)
        self.history_caption = QLabel("HISTORY  ·  NEWEST FIRST  ·  CLICK OR ← → TO REVIEW")
        self.history_caption.setObjectName("caption")
        outer.addWidget(self.history_caption)
        row = QHBoxLayout()
        row.setSpacing(12)
        self.history_strip = HistoryStrip(HISTORY_LENGTH, panel)
        self.history_strip.part_selected.connect(self._on_history_strip_part_selected)
        row.addWidget(self.history_strip, 1)
        self.live_button = QPushButton("●  LIVE")
        self.live_button.setObjectName("live")
        self.live_button.setMinimumSize(150, 60)
        self.live_button.setToolTip("Follow the line again (Space)")
        self.live_button.clicked.connect(self._on_live_button_clicked)
        row.addWidget(self.live_button, 0, Qt.AlignmentFlag.AlignVCenter)
        outer.addLayout(row)
        wrapper = QFrame(window)
        wrapper_layout = QVBoxLayout(wrapper)
        wrapper_layout.setContentsMargins(12, 0, 12, 8)
        wrapper_layout.addWidget(panel)
        return wrapper

    # Slots the window provides (declared for the type checker).
    if TYPE_CHECKING:

        def _on_nav_button_clicked(self, index: int) -> None: ...
        def _on_ack_button_clicked(self) -> None: ...
        def _on_held_ack_button_clicked(self) -> None: ...
        def _on_heatmap_toggle_toggled(self, checked: bool) -> None: ...
        def _on_history_strip_part_selected(self, part: object) -> None: ...
        def _on_live_button_clicked(self) -> None: ...
