"""The supervisor's "Threshold" page: the value in force, a what-if before changing it, its history.

The page shows the threshold in force and who set it, when and why; a slider and a number choose
a proposed value, and the what-if over a window (this shift, 24 h, 7 days, a range) is computed
off the GUI thread (:mod:`.whatif_reader`): flips per class, yield, rates with 95% intervals on
reviewed parts, the bundle's validation figures, score histograms of good / bad / unreviewed
parts and the ROC of reviewed parts with both operating points, thumbnails of the parts that
would flip. A proposed value that misses a defect of the bundle's validation set shows a warning
that must be ticked before it can be applied. Applying needs a reason and a logged-in user whose
role may change a threshold; core checks it (a refusal is shown and recorded) and keeps the
figures shown with the change. The panel tells the running station (``applied`` ->
the worker), so the very next part is judged by it. Each earlier value has a "Roll back" button: a new recorded change.
"""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QDateTime, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QIcon, QImage, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.storage.auth import Permission
from core.storage.errors import NotAllowedError, StorageError

from . import theme
from .review_style import REVIEW_STYLE
from .session import Session
from .whatif_reader import LogOpener, WhatIfAnswer, WhatIfReader, WhatIfRequest

# Okabe-Ito: distinguishable with any colour vision; the classes also differ by line style.
GOOD_COLOUR, BAD_COLOUR, UNREVIEWED_COLOUR = "#009E73", "#D55E00", "#56B4E9"
CURRENT_COLOUR, PROPOSED_COLOUR = "#F0E442", "#E69F00"
WINDOWS = (("This shift", "shift"), ("Last 24 h", "24h"), ("Last 7 days", "7d"), ("Range", "range"))
STEPS = 1000  # slider resolution: 0.001
REFRESH_MS = 2000  # the value in force and the history, read again while the page is shown


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


class ThresholdPage(QWidget):
    """The threshold panel (a page of the station window, see :func:`.workspace.install_workspace`).

    Args:
        session: Who is logged in; its log is used on the GUI thread for the value in force,
            the history and applying a change.
        open_log: Opens the visual log for the what-if reader's thread.

    Signals:
        computed(object): a what-if is shown (its ``WhatIf``).
        applied(object): a change was recorded (its ``ThresholdChange``).
    """

    computed = Signal(object)
    applied = Signal(object)
    _compute_requested = Signal(object)
    _close_requested = Signal()

    def __init__(self, session: Session, open_log: LogOpener, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thresholdPage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(REVIEW_STYLE + f"QHeaderView {{ background: {theme.PANEL}; }}")
        self._session = session
        self._number = 0
        self.answer: WhatIfAnswer | None = None
        self.current: float | None = None
        self.status = ""
        self.opened_dialog: QDialog | None = None
        self._build()

        self._thread = QThread()
        self._thread.setObjectName("what-if reader")
        self.reader = WhatIfReader(open_log)
        self.reader.moveToThread(self._thread)
        self._compute_requested.connect(self.reader.compute)
        self._close_requested.connect(self.reader.close)
        self.reader.computed.connect(self._on_reader_computed)
        self.reader.failed.connect(self._on_reader_failed)
        self._thread.start()

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.compute)
        self._refresh = QTimer(self)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(self.refresh)
        session.changed.connect(self._on_session_changed)
        self._on_session_changed(session.actor)

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        pg.setConfigOptions(antialias=True, background=theme.BACKGROUND, foreground=theme.TEXT)
        self.current_label = QLabel("threshold in force: –")
        self.current_label.setObjectName("thresholdInForce")
        self.current_label.setStyleSheet("font-size: 26px; font-weight: 600;")
        self.set_by_label = QLabel("")
        self.set_by_label.setWordWrap(True)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 1.0)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.005)
        self.spin.setMinimumWidth(110)
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self.spin.valueChanged.connect(self._on_spin_value_changed)
        self.window_combo = QComboBox()
        for label, key in WINDOWS:
            self.window_combo.addItem(label, key)
        self.window_combo.setCurrentIndex(1)
        self.window_combo.currentIndexChanged.connect(self._on_window_combo_changed)
        now = QDateTime.currentDateTime()
        self.since_edit, self.until_edit = QDateTimeEdit(now.addDays(-1)), QDateTimeEdit(now)
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.dateTimeChanged.connect(lambda _v: self._debounce.start())
            edit.hide()

        proposal = QGridLayout()
        proposal.addWidget(QLabel("Proposed"), 0, 0)
        proposal.addWidget(self.slider, 0, 1)
        proposal.addWidget(self.spin, 0, 2)
        proposal.addWidget(QLabel("Parts of"), 1, 0)
        row = QHBoxLayout()
        row.addWidget(self.window_combo)
        row.addWidget(self.since_edit)
        row.addWidget(self.until_edit)
        row.addStretch(1)
        proposal.addLayout(row, 1, 1, 1, 2)

        self.figures_label = QLabel("computing…")
        self.figures_label.setObjectName("whatIfFigures")
        self.figures_label.setTextFormat(Qt.TextFormat.RichText)
        self.figures_label.setWordWrap(True)
        self.warning_label = QLabel("")
        self.warning_label.setObjectName("whatIfWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(f"color: {theme.TEXT}; background: {theme.ALARM}; padding: 6px;")
        self.warning_label.hide()
        self.accept_box = QCheckBox("I have seen the warning: apply anyway")
        self.accept_box.hide()
        self.accept_box.toggled.connect(lambda _c: self._update_apply())
        self.reason_edit = QLineEdit()
        self.reason_edit.setPlaceholderText("Reason (required), e.g. too many false rejects on the new batch")
        self.reason_edit.textChanged.connect(lambda _t: self._update_apply())
        self.apply_button = QPushButton("Apply threshold")
        self.apply_button.setObjectName("applyThreshold")
        self.apply_button.clicked.connect(self.apply)
        self.status_label = QLabel("")
        self.status_label.setObjectName("thresholdStatus")
        self.status_label.setWordWrap(True)
        apply_row = QHBoxLayout()
        apply_row.addWidget(self.reason_edit, 1)
        apply_row.addWidget(self.apply_button)

        left = QVBoxLayout()
        left.addWidget(self.current_label)
        left.addWidget(self.set_by_label)
        left.addLayout(proposal)
        left.addWidget(self.figures_label)
        left.addWidget(self.warning_label)
        left.addWidget(self.accept_box)
        left.addLayout(apply_row)
        left.addWidget(self.status_label)
        left.addWidget(QLabel("History (newest first)"))
        self.history_table = QTableWidget(0, 5)
        self.history_table.setHorizontalHeaderLabels(["When", "Who", "Change", "Reason", ""])
        self.history_table.verticalHeader().hide()
        self.history_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.history_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        left.addWidget(self.history_table, 1)

        self.histogram = pg.PlotWidget(title="Scores of the window's parts")
        self.histogram.setLabel("bottom", "score (probability of a defect)")
        self.histogram.setLabel("left", "parts")
        self.histogram.addLegend(offset=(10, 10))
        self.histogram.setXRange(0, 1, padding=0.02)
        self._curves = {
            truth: self.histogram.plot([0, 1], [0], stepMode="center", name=name, pen=pg.mkPen(colour, width=2.5, style=style))
            for truth, name, colour, style in (
                ("good", "reviewed good", GOOD_COLOUR, Qt.PenStyle.SolidLine),
                ("bad", "reviewed bad", BAD_COLOUR, Qt.PenStyle.DashLine),
                ("unreviewed", "unreviewed", UNREVIEWED_COLOUR, Qt.PenStyle.DotLine),
            )
        }  # fmt: skip
        self.current_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(CURRENT_COLOUR, width=2, style=Qt.PenStyle.DashLine)
        )
        self.proposed_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(PROPOSED_COLOUR, width=3))
        for line in (self.current_line, self.proposed_line):
            self.histogram.addItem(line)
        self.roc = pg.PlotWidget(title="ROC of reviewed parts")
        self.roc.setLabel("bottom", "false-reject rate")
        self.roc.setLabel("left", "detection rate")
        self.roc.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.roc.addLegend(offset=(-10, -10))
        self.roc_curve = self.roc.plot([], [], pen=pg.mkPen(theme.TEXT, width=2), name="reviewed parts")
        self.roc_points = {
            key: self.roc.plot([], [], pen=None, symbol=symbol, symbolSize=14, symbolBrush=colour, name=name)
            for key, symbol, colour, name in (
                ("current", "s", CURRENT_COLOUR, "in force"),
                ("proposed", "o", PROPOSED_COLOUR, "proposed"),
            )
        }
        self.flips_list = QListWidget()
        self.flips_list.setObjectName("flippedParts")
        self.flips_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.flips_list.setIconSize(pg.QtCore.QSize(88, 88))
        self.flips_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.flips_list.setMaximumHeight(150)
        self.flips_list.itemActivated.connect(self._on_flips_list_item_activated)
        plots = QHBoxLayout()
        plots.addWidget(self.histogram, 3)
        plots.addWidget(self.roc, 2)
        right = QVBoxLayout()
        right.addLayout(plots, 1)
        right.addWidget(QLabel("Parts that would change verdict (double-click to open)"))
        right.addWidget(self.flips_list)

        root = QHBoxLayout(self)
        root.setContentsMargins(16, 12, 16, 12)
        root.addLayout(left, 2)
        root.addLayout(right, 3)

    # -- reading ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the value in force and the history again (cheap; also after a change elsewhere)."""
        try:
            changes = self._session.log().threshold_changes()
        except StorageError as exc:
            self._say(str(exc))
            return
        last = changes[-1] if changes else None
        first_time = self.current is None
        self.current = None if last is None else last.new
        if last is None:
            self.current_label.setText("threshold in force: none recorded yet")
            self.set_by_label.setText("The station records its model's threshold when it starts.")
        else:
            self.current_label.setText(f"threshold in force: {last.new:.3f}")
            local = last.created_at.astimezone()
            self.set_by_label.setText(f"set by {last.user} on {local:%Y-%m-%d %H:%M}: {last.reason}")
            self.current_line.setValue(last.new)
        self._fill_history(changes)
        if first_time and last is not None:
            self.set_proposed(last.new)
        self._update_apply()

    def _fill_history(self, changes: list) -> None:  # type: ignore[type-arg]
        table = self.history_table
        table.setRowCount(len(changes))
        for row, change in enumerate(reversed(changes)):
            was = "–" if change.old is None else f"{change.old:.3f}"
            cells = (
                f"{change.created_at.astimezone():%m-%d %H:%M}",
                change.user,
                f"{was} → {change.new:.3f}",
                change.reason,
            )
            for column, text in enumerate(cells):
                table.setItem(row, column, QTableWidgetItem(text))
            table.removeCellWidget(row, 4)
            if row == 0:
                table.setItem(row, 4, QTableWidgetItem("in force"))
                continue
            button = QPushButton(f"Roll back to {change.new:.3f}")
            button.setEnabled(self._session.may(Permission.CHANGE_THRESHOLD))
            button.clicked.connect(lambda _c=False, seq=change.seq: self.roll_back(seq))
            table.setCellWidget(row, 4, button)
        table.resizeColumnsToContents()

    def set_proposed(self, value: float) -> None:
        """Propose ``value`` (as the slider and the number do); the what-if follows."""
        self.spin.setValue(float(value))

    @property
    def proposed(self) -> float:
        return round(self.spin.value(), 3)

    def compute(self) -> int:
        """Ask the reader for the what-if of the proposed value; returns the request's number."""
        self._number += 1
        key = self.window_combo.currentData()
        since = until = None
        if key == "range":
            since = self.since_edit.dateTime().toPython().astimezone(UTC)
            until = self.until_edit.dateTime().toPython().astimezone(UTC)
        request = WhatIfRequest(self._number, self.proposed, "24h" if key == "range" else key, since, until)
        self.figures_label.setText("computing…")
        self._compute_requested.emit(request)
        self._update_apply()
        return self._number

    @Slot(object)
    def _on_reader_computed(self, answer: WhatIfAnswer) -> None:
        if answer.request.number != self._number:
            return  # an older question
        self.answer = answer
        self._show(answer)
        self.computed.emit(answer.result)

    @Slot(object, str)
    def _on_reader_failed(self, request: WhatIfRequest, message: str) -> None:
        if request.number == self._number:
            self.answer = None
            self.figures_label.setText(f"The what-if failed: {message}")
            self._update_apply()

    def _show(self, answer: WhatIfAnswer) -> None:
        r = answer.result

        def rates(label: str, now: object, then: object) -> str:
            if now is None or then is None:
                return f"<tr><td>{label}</td><td colspan=2>–</td></tr>"
            cells = []
            for point in (now, then):
                m, f = point.miss, point.false_reject  # type: ignore[attr-defined]
                cells.append(
                    f"miss {m.count}/{m.total} {_pct(m.rate)} [{_pct(m.low)}–{_pct(m.high)}]<br>"
                    f"false reject {f.count}/{f.total} {_pct(f.rate)} [{_pct(f.low)}–{_pct(f.high)}]"
                )
            return f"<tr><td>{label}</td><td>{cells[0]}</td><td>{cells[1]}</td></tr>"

        flips = lambda d: ", ".join(f"{n} {k}" for k, n in d.items())  # noqa: E731
        self.figures_label.setText(
            f"<b>{r.flips}</b> of {r.inspected} inspected parts change verdict "
            f"({r.since.astimezone():%m-%d %H:%M} to {r.until.astimezone():%m-%d %H:%M})<br>"
            f"good → bad: <b>{sum(r.good_to_bad.values())}</b> ({flips(r.good_to_bad)})<br>"
            f"bad → good: <b>{sum(r.bad_to_good.values())}</b> ({flips(r.bad_to_good)})<br>"
            f"yield {_pct(r.yield_current)} → <b>{_pct(r.yield_proposed)}</b>"
            f"<table cellspacing=6><tr><td></td><td>in force {r.current:.3f}</td><td>proposed {r.proposed:.3f}</td></tr>"
            + rates("reviewed parts", r.reviewed_current, r.reviewed_proposed)
            + rates("bundle validation", r.validation_current, r.validation_proposed)
            + "</table>"
            + (f"<i>{r.validation_note}</i>" if r.validation_note else "")
        )
        if r.misses_validation_defects:
            self.warning_label.setText(
                f"WARNING: {r.proposed:.3f} misses {len(r.validation_missed)} defect(s) of the bundle's validation"
                f" set (scores {', '.join(f'{s:.3f}' for s in r.validation_missed[:5])})."
            )
        self.warning_label.setVisible(r.misses_validation_defects)
        self.accept_box.setVisible(r.misses_validation_defects)
        self.accept_box.setChecked(False)

        edges = np.linspace(0.0, 1.0, 41)
        for truth, curve in self._curves.items():
            counts, _ = np.histogram(r.scores[truth], bins=edges)
            curve.setData(edges, counts)
        self.current_line.setValue(r.current)
        self.proposed_line.setValue(r.proposed)
        fpr, tpr = r.roc()
        self.roc_curve.setData(fpr, tpr)
        for key, point in (("current", r.reviewed_current), ("proposed", r.reviewed_proposed)):
            fr, miss = point.false_reject.rate, point.miss.rate
            self.roc_points[key].setData(
                [] if fr is None or miss is None else [fr], [] if fr is None or miss is None else [1 - miss]
            )

        self.flips_list.clear()
        for flipped in r.flipped[:200]:
            arrow = "good → bad" if flipped.direction == "good_to_bad" else "bad → good"
            item = QListWidgetItem(f"{flipped.score:.3f}\n{arrow}\n({flipped.truth})")
            item.setData(Qt.ItemDataRole.UserRole, flipped.image_path)
            item.setToolTip(f"part {flipped.part_id}")
            thumb = answer.thumbnails.get(flipped.part_id)
            if thumb is not None:
                image = QImage(
                    thumb.data,
                    thumb.shape[1],
                    thumb.shape[0],
                    thumb.strides[0],
                    QImage.Format.Format_Grayscale8,
                )
                item.setIcon(QIcon(QPixmap.fromImage(image.copy())))
            self.flips_list.addItem(item)
        self._update_apply()

    # -- acting -------------------------------------------------------------------------------
    def apply(self) -> bool:
        """Record the proposed threshold with the reason and the figures shown (core checks the user)."""
        answer = self.answer
        if answer is None or answer.request.proposed != self.proposed:
            return self._say("Wait for the what-if of this value first.")
        if answer.result.misses_validation_defects and not self.accept_box.isChecked():
            return self._say("Tick the warning first: this value misses defects of the validation set.")
        return self._record(self.proposed, self.reason_edit.text(), answer.result.to_json())

    def roll_back(self, seq: int) -> bool:
        """Go back to the value of change ``seq`` (itself a recorded change)."""
        target = next((c for c in self._session.log().threshold_changes() if c.seq == seq), None)
        if target is None:
            return self._say(f"No threshold change {seq}.")
        reason = (
            self.reason_edit.text().strip()
            or f"rollback to change {seq} ({target.new:.3f}, set by {target.user})"
        )
        return self._record(target.new, reason, {"rollback_to": seq})

    def _record(self, value: float, reason: str, evidence: dict) -> bool:  # type: ignore[type-arg]
        actor = self._session.actor
        if actor is None:
            return self._say("Log in first: changing the threshold needs a supervisor.")
        visual_log = self._session.log()
        try:
            changes = visual_log.threshold_changes()
            model_hash = next((c.model_hash for c in reversed(changes) if c.model_hash), None)
            change = visual_log.record_threshold_change(
                visual_log.current_threshold(),
                value,
                actor=actor,
                reason=reason,
                model_hash=model_hash,
                evidence=evidence,
            )
        except (NotAllowedError, ValueError, StorageError) as exc:
            text = str(exc)
            return self._say(text[:1].upper() + text[1:])
        self.reason_edit.clear()
        self._say(
            f"Threshold {change.new:.3f} applied by {change.user}; the station judges the next part by it."
        )
        self.refresh()
        self.compute()
        self.applied.emit(change)
        return True

    def _say(self, message: str) -> bool:
        self.status = message
        self.status_label.setText(message)
        return False

    def _update_apply(self) -> None:
        answer = self.answer
        ready = (
            self._session.may(Permission.CHANGE_THRESHOLD)
            and bool(self.reason_edit.text().strip())
            and answer is not None
            and answer.request.proposed == self.proposed
            and (not answer.result.misses_validation_defects or self.accept_box.isChecked())
        )
        self.apply_button.setEnabled(ready)
        who = self._session.actor
        if who is None:
            self.apply_button.setToolTip("Log in as a supervisor to apply")
        elif not self._session.may(Permission.CHANGE_THRESHOLD):
            self.apply_button.setToolTip(f"{who.name} ({who.role.value}) may not change the threshold")
        else:
            self.apply_button.setToolTip("")

    # -- slots --------------------------------------------------------------------------------
    def _on_slider_value_changed(self, value: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(value / STEPS)
        self.spin.blockSignals(False)
        self.proposed_line.setValue(value / STEPS)
        self._debounce.start()

    def _on_spin_value_changed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * STEPS))
        self.slider.blockSignals(False)
        self.proposed_line.setValue(value)
        self._debounce.start()

    def _on_window_combo_changed(self, _index: int) -> None:
        is_range = self.window_combo.currentData() == "range"
        self.since_edit.setVisible(is_range)
        self.until_edit.setVisible(is_range)
        self._debounce.start()

    def _on_session_changed(self, _actor: object) -> None:
        if self.current is not None:
            self.refresh()  # the roll-back buttons follow the user's role
        self._update_apply()

    def _on_flips_list_item_activated(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if not path:
            return
        try:
            pixmap = QPixmap(str(self._session.log().media_path(path)))
        except ValueError:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(item.toolTip())
        label = QLabel()
        label.setPixmap(
            pixmap.scaled(640, 640, Qt.AspectRatioMode.KeepAspectRatio) if not pixmap.isNull() else pixmap
        )
        if pixmap.isNull():
            label.setText("The picture is gone (retention) or unreadable.")
        QVBoxLayout(dialog).addWidget(label)
        self.opened_dialog = dialog
        dialog.show()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.refresh()
        if self.answer is None:
            self.compute()
        self._refresh.start()

    def hideEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        self._refresh.stop()
        super().hideEvent(event)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        """Stop the reader's thread (its log is closed there)."""
        self._refresh.stop()
        self._debounce.stop()
        if self._thread.isRunning():
            self._close_requested.emit()
            self._thread.quit()
            self._thread.wait(10_000)
