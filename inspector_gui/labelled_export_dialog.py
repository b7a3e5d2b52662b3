"""Export the reviewed parts for retraining, from the window: ``good/``, ``bad/`` and a manifest.

The same export as ``inspector export-labelled`` (``core.reports.labelled_export``), on a worker
thread with progress: every reviewed part of the chosen station (or all), labelled by its newest
review. The folder must be new or empty; it opens when the export is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .folder_export import FolderExportDialog

if TYPE_CHECKING:
    from core.reports.labelled_export import LabelledExport
    from core.storage import VisualLog

log = logging.getLogger(__name__)


class LabelledExportWorker(QObject):
    """Runs the export on its own thread.

    Signals:
        progressed(int, int): parts done, parts in all.
        finished(object): the ``LabelledExport``.
        failed(str): why nothing (or not everything) was written.
    """

    progressed = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, open_log: Callable[[], VisualLog]) -> None:
        super().__init__()
        self._open_log = open_log
        self.thread_ids: set[int] = set()

    @Slot(object, object)
    def export(self, out_dir: Path, stations: tuple[str, ...] | None) -> None:
        from core.reports.labelled_export import export_labelled

        self.thread_ids.add(threading.get_ident())
        try:
            with self._open_log() as visual_log:
                result = export_labelled(
                    visual_log, out_dir, stations=stations, progress=self.progressed.emit
                )
        except Exception as exc:  # an empty selection, a full disk, a folder not empty: said in the dialog
            log.warning("labelled export failed: %s", exc)
            self.failed.emit(str(exc) or type(exc).__name__)
            return
        self.finished.emit(result)


class LabelledExportDialog(FolderExportDialog):
    """Export reviewed parts as a labelled folder.

    Args:
        open_log: Opens the visual log (on the worker thread).
        stations: The stations to offer.
        out_dir: The folder proposed.
        open_folder: Open the folder when done (not on the offscreen platform).

    Signals:
        exported(object): the ``LabelledExport`` written.
    """

    exported = Signal(object)
    _export_requested = Signal(object, object)

    def __init__(
        self,
        open_log: Callable[[], VisualLog],
        stations: Sequence[str],
        *,
        out_dir: Path | None = None,
        open_folder: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        self.worker: LabelledExportWorker
        super().__init__(
            LabelledExportWorker(open_log),
            title="Export reviewed parts for training",
            thread_name="labelled-export",
            open_folder=open_folder,
            parent=parent,
        )
        self.result: LabelledExport | None = None
        self._export_requested.connect(self.worker.export)
        self.worker.progressed.connect(self._on_worker_progressed)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self._thread.start()

        layout = QVBoxLayout(self)
        note = QLabel(
            "Every reviewed part, in good/ or bad/ by its newest review, with manifest.json "
            "(part ids, SHA-256). Train on it with: inspector train FOLDER --out RUN"
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        form = QFormLayout()
        self.station_choice = QComboBox()
        self.station_choice.addItem("All stations", None)
        for name in stations:
            self.station_choice.addItem(name, name)
        form.addRow("Station", self.station_choice)
        self.folder_edit = QLineEdit(str(out_dir or Path.home() / "reviewed-parts"))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._on_browse_clicked)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("New folder", row)
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
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.resize(640, 260)

    @Slot()
    def start_export(self) -> None:
        station = self.station_choice.currentData()
        self._out_dir = Path(self.folder_edit.text()).expanduser()
        self.export_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.status.setText("Exporting…")
        self._export_requested.emit(self._out_dir, (station,) if station else None)

    @Slot()
    def _on_browse_clicked(self) -> None:
        self._browse("An empty folder for the export")

    @Slot(int, int)
    def _on_worker_progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    @Slot(object)
    def _on_worker_finished(self, result: LabelledExport) -> None:
        self.result = result
        self.export_button.setEnabled(True)
        skipped = f"; {len(result.skipped)} left out (see the manifest)" if result.skipped else ""
        self.status.setText(f"{result.parts} parts written: {result.good} good, {result.bad} bad{skipped}")
        self._open_out_dir()
        self.exported.emit(result)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        self._show_failure(f"⚠ Not exported: {message}")
