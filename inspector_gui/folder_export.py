"""What the window's export dialogs share: a worker on its own thread writing into a folder.

The shift-report and the labelled-part exports differ in what they write; this holds the rest:
the worker's thread (started with the dialog, stopped when it closes), choosing the folder,
opening it when done, and showing a failure.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QThread, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QDialog, QFileDialog, QLabel, QLineEdit, QProgressBar, QPushButton, QWidget

from . import theme
from .review_style import REVIEW_STYLE


class FolderExportDialog(QDialog):
    """A dialog whose ``worker`` writes into ``folder_edit``'s folder on a thread of its own.

    Subclasses build ``folder_edit``, ``export_button``, ``progress`` and ``status``, connect
    the worker's signals, and call :meth:`_open_out_dir` / :meth:`_show_failure`.
    """

    folder_edit: QLineEdit
    export_button: QPushButton
    progress: QProgressBar
    status: QLabel

    def __init__(
        self, worker: QObject, *, title: str, thread_name: str, open_folder: bool, parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setStyleSheet(theme.STYLE_SHEET + REVIEW_STYLE)
        self._open_folder = open_folder
        self._out_dir = Path()
        self.opened_url: QUrl | None = None
        self.worker = worker
        self._thread = QThread()
        self._thread.setObjectName(thread_name)
        worker.moveToThread(self._thread)

    def _browse(self, caption: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, caption, self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _open_out_dir(self) -> None:
        """Open the folder written (when asked to), in the desktop's file manager."""
        if self._open_folder:
            self.opened_url = QUrl.fromLocalFile(str(self._out_dir))
            # Offscreen (tests, a headless box) there is no file manager to ask.
            if QGuiApplication.platformName() != "offscreen":
                QDesktopServices.openUrl(self.opened_url)

    def _show_failure(self, message: str) -> None:
        self.export_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(message)

    def shutdown(self) -> None:
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)  # type: ignore[arg-type]
