"""The shift export dialog: the shift CSV reports of ``inspector report``, from the window.

Choose a shift (this one, the previous one, or any of the last week's) or a time range, one
station or all of them, and a folder. The reports are written by ``core.reports``'
``write_shift_report`` (the same files as the command line) on a worker thread, one station after
the other, with progress; the folder opens when they are done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QDateTime, QObject, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDateTimeEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from core.reports.shifts import DEFAULT_PLAN, Shift, ShiftPlan

from .folder_export import FolderExportDialog

if TYPE_CHECKING:
    from core.storage import VisualLog

log = logging.getLogger(__name__)

StationLogOpener = Callable[[str], "VisualLog"]  # station name -> its visual log
RANGE_NAME = "range"


class ExportWorker(QObject):
    """Writes the reports on its own thread.

    Signals:
        progressed(int, int, str): stations done, stations in all, what is being written.
        finished(list): the files written.
        failed(str): why it stopped.
    """

    progressed = Signal(int, int, str)
    finished = Signal(list)
    failed = Signal(str)

    def __init__(self, open_log: StationLogOpener) -> None:
        super().__init__()
        self._open_log = open_log
        self.thread_ids: set[int] = set()

    @Slot(object, object, object, bool)
    def export(self, shift: Shift, stations: Sequence[str], out_dir: Path, verify: bool) -> None:
        from core.reports.shift_report import write_shift_report

        self.thread_ids.add(threading.get_ident())
        written: list[str] = []
        try:
            for done, station in enumerate(stations):
                self.progressed.emit(done, len(stations), f"{station} {shift.label}")
                with self._open_log(station) as visual_log:
                    report = write_shift_report(visual_log, shift, out_dir, verify=verify)
                written += [str(report.parts_csv), str(report.summary_csv)]
            self.progressed.emit(len(stations), len(stations), "done")
        except Exception as exc:  # disk full, a log that cannot be read: said in the dialog
            log.warning("shift export failed: %s", exc)
            self.failed.emit(str(exc) or type(exc).__name__)
            return
        self.finished.emit(written)


class ExportDialog(FolderExportDialog):
    """Export shift reports.

    Args:
        open_log: Opens the visual log of a station (called on the worker thread).
        stations: The stations to offer.
        plan: The shift plan (default: the default plan, local time).
        out_dir: The folder proposed.
        clock: Now, UTC (tests).
        open_folder: Open the folder when done (QDesktopServices; harmless offscreen).

    Signals:
        exported(list): the files written.
    """

    exported = Signal(list)
    _export_requested = Signal(object, object, object, bool)

    def __init__(
        self,
        open_log: StationLogOpener,
        stations: Sequence[str],
        *,
        plan: ShiftPlan | None = None,
        out_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        open_folder: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        self.worker: ExportWorker
        super().__init__(
            ExportWorker(open_log),
            title="Export shift reports",
            thread_name="shift-export",
            open_folder=open_folder,
            parent=parent,
        )
        self._plan = plan or ShiftPlan.parse(DEFAULT_PLAN)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.written: list[str] = []
        self._export_requested.connect(self.worker.export)
        self.worker.progressed.connect(self._on_worker_progressed)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self._thread.start()
        self._build(stations, out_dir or Path.home())

    def _build(self, stations: Sequence[str], out_dir: Path) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.shift_radio = QRadioButton("Shift")
        self.range_radio = QRadioButton("Range")
        self.shift_radio.setChecked(True)
        self.shift_choice = QComboBox()
        now = self._clock()
        current = self._plan.shift_at(now)
        shift = current
        for _ in range(7 * len(self._plan.starts)):  # the last week's shifts, newest first
            label = shift.label + (" (current)" if shift == current else "")
            self.shift_choice.addItem(label, shift)
            shift = self._plan.previous(shift)
        if self.shift_choice.count() > 1:
            self.shift_choice.setCurrentIndex(1)  # the previous shift: the one that has ended
        self.since_edit = QDateTimeEdit(
            QDateTime.fromSecsSinceEpoch(int((now - timedelta(hours=8)).timestamp()))
        )
        self.until_edit = QDateTimeEdit(QDateTime.fromSecsSinceEpoch(int(now.timestamp())))
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        shift_row = QHBoxLayout()
        shift_row.addWidget(self.shift_radio)
        shift_row.addWidget(self.shift_choice, 1)
        range_row = QHBoxLayout()
        range_row.addWidget(self.range_radio)
        range_row.addWidget(self.since_edit)
        range_row.addWidget(QLabel("to"))
        range_row.addWidget(self.until_edit)
        form.addRow("When", shift_row)
        form.addRow("", range_row)
        self.station_choice = QComboBox()
        if len(stations) > 1:
            self.station_choice.addItem("All stations", None)
        for name in stations:
            self.station_choice.addItem(name, name)
        form.addRow("Station", self.station_choice)
        self.folder_edit = QLineEdit(str(out_dir))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._on_browse_clicked)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        layout.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.export_button = QPushButton("Write reports")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self.resize(640, 280)

    def chosen_shift(self) -> Shift:
        """The shift, or the range as a shift named ``range``.

        Raises:
            ValueError: A range that ends before it starts.
        """
        if self.shift_radio.isChecked():
            shift = self.shift_choice.currentData()
            assert isinstance(shift, Shift)
            return shift
        start = datetime.fromtimestamp(self.since_edit.dateTime().toSecsSinceEpoch(), UTC)
        end = datetime.fromtimestamp(self.until_edit.dateTime().toSecsSinceEpoch(), UTC)
        if end <= start:
            raise ValueError("the range ends before it starts")
        zone = self._plan.zone
        return Shift(name=RANGE_NAME, day=start.astimezone(zone).date(), start=start, end=end, zone=zone)

    def chosen_stations(self) -> list[str]:
        station = self.station_choice.currentData()
        if station:
            return [station]
        return [self.station_choice.itemData(i) for i in range(1, self.station_choice.count())]

    @Slot()
    def start_export(self) -> None:
        try:
            shift = self.chosen_shift()
        except ValueError as exc:
            self.status.setText(f"⚠ {exc}")
            return
        stations = self.chosen_stations()
        if not stations:
            self.status.setText("⚠ The visual log has no station yet.")
            return
        out_dir = Path(self.folder_edit.text()).expanduser()
        self.export_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first station reports
        self.status.setText("Writing…")
        self._out_dir = out_dir
        self._export_requested.emit(shift, stations, out_dir, True)

    @Slot()
    def _on_browse_clicked(self) -> None:
        self._browse("Folder for the reports")

    @Slot(int, int, str)
    def _on_worker_progressed(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        if what != "done":
            self.status.setText(f"Writing {what} ({done + 1} of {total})…")

    @Slot(list)
    def _on_worker_finished(self, written: list[str]) -> None:
        self.written = written
        self.export_button.setEnabled(True)
        self.status.setText(f"{len(written)} files written to {self._out_dir}")
        self._open_out_dir()
        self.exported.emit(written)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        self._show_failure(f"⚠ Not written: {message}")
