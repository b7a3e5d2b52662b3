"""The supervisor's "History" page of the station window: history, a part's detail, exports.

One :class:`HistoryPage` holds the history view and the detail view on a stack (Enter on a row
opens the part; Esc or "History" goes back) and shares one history reader thread between them.
``install_history_page(window, log_url, ...)`` adds it to a ``StationWindow`` (``add_page``) and
stops its threads when the window closes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from .detail_view import ActorProvider, DetailView
from .export_dialog import ExportDialog, StationLogOpener
from .history_model import LogOpener, ReaderThread
from .history_view import HistoryView
from .labelled_export_dialog import LabelledExportDialog

if TYPE_CHECKING:
    from core.storage import VisualLog

    from .main_window import StationWindow


class HistoryPage(QWidget):
    """History and detail on one page of the window.

    Args:
        open_log: Opens the visual log for reading (on the reader's thread).
        open_station_log: Opens the log of one station (the shift export writes per station).
        actor: The logged-in user's ``Actor``, or None (reviews then ask for a log-in).
        bundle: The station's model bundle, for other CAM methods in the detail view.
        export_dir: The folder the shift export proposes.
    """

    def __init__(
        self,
        open_log: LogOpener,
        open_station_log: StationLogOpener,
        *,
        actor: ActorProvider,
        bundle: Path | None = None,
        export_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("historyPage")
        self._open_station_log = open_station_log
        self._export_dir = export_dir
        self.export_dialog: ExportDialog | None = None
        self.labelled_dialog: LabelledExportDialog | None = None
        self._open_log = open_log
        self.reader = ReaderThread(open_log)
        self.history = HistoryView(self.reader)
        self.detail = DetailView(self.reader, actor=actor, bundle=bundle)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.history)
        self.stack.addWidget(self.detail)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.setContentsMargins(16, 8, 16, 0)
        top.addStretch(1)
        self.labelled_button = QPushButton("Export reviewed parts…")
        self.labelled_button.setToolTip("good/ and bad/ folders of the reviewed parts, to retrain on")
        self.labelled_button.clicked.connect(self.open_labelled_export)
        top.addWidget(self.labelled_button)
        self.export_button = QPushButton("Export shift reports…")
        self.export_button.clicked.connect(self.open_export)
        top.addWidget(self.export_button)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        self.history.part_opened.connect(self._on_history_part_opened)
        self.detail.back_requested.connect(self._on_detail_back_requested)
        self.detail.reviewed.connect(self._on_detail_reviewed)

    @Slot(str)
    def _on_history_part_opened(self, part_id: str) -> None:
        self.detail.open_part(part_id)
        self.stack.setCurrentWidget(self.detail)

    @Slot()
    def _on_detail_back_requested(self) -> None:
        self.stack.setCurrentWidget(self.history)
        self.history.table.setFocus()

    @Slot(object)
    def _on_detail_reviewed(self, _review: object) -> None:
        self.history.model.refresh()  # the row's review column, and the review filters

    @Slot()
    def open_export(self) -> None:
        """Open the shift export dialog for the stations the log holds."""
        combo = self.history.station_choice
        stations = [combo.itemData(i) for i in range(1, combo.count())]
        if self.export_dialog is not None:
            self.export_dialog.close()
        self.export_dialog = ExportDialog(
            self._open_station_log, stations, plan=self.history.plan, out_dir=self._export_dir, parent=self
        )
        self.export_dialog.show()

    @Slot()
    def open_labelled_export(self) -> None:
        """Open the dialog that exports the reviewed parts as a labelled folder."""
        combo = self.history.station_choice
        stations = [combo.itemData(i) for i in range(1, combo.count())]
        if self.labelled_dialog is not None:
            self.labelled_dialog.close()
        out_dir = self._export_dir / "reviewed-parts" if self._export_dir is not None else None
        self.labelled_dialog = LabelledExportDialog(self._open_log, stations, out_dir=out_dir, parent=self)
        self.labelled_dialog.show()

    def shutdown(self) -> None:
        """Stop every thread of the page (the window calls it when it closes)."""
        if self.labelled_dialog is not None:
            self.labelled_dialog.shutdown()
        if self.export_dialog is not None:
            self.export_dialog.shutdown()
        self.history.shutdown()
        self.detail.shutdown()
        self.reader.shutdown()


def install_history_page(
    window: StationWindow,
    log_url: str,
    *,
    media_root: Path | None = None,
    actor: ActorProvider,
    bundle: Path | None = None,
    export_dir: Path | None = None,
    shortcut: str = "F3",
    opener: Callable[..., VisualLog] | None = None,
) -> HistoryPage:
    """Add the "History" page to the station window.

    Args:
        window: The station window.
        log_url: The visual log's URL (the page opens its own connections to it).
        media_root: Its media folder (default: the data directory's).
        actor: Returns the logged-in user's ``Actor`` or None (the session's).
        bundle: The station's model bundle, for other CAM methods.
        export_dir: The folder the shift export proposes.
        shortcut: The key that opens the page.
        opener: Makes a ``VisualLog`` (tests); default ``core.storage.VisualLog``.
    """
    if opener is None:
        from core.storage import VisualLog

        opener = VisualLog

    def open_log() -> VisualLog:
        return opener(log_url, media_root=media_root)

    def open_station_log(station: str) -> VisualLog:
        return opener(log_url, media_root=media_root, station=station)

    page = HistoryPage(open_log, open_station_log, actor=actor, bundle=bundle, export_dir=export_dir)
    window.add_page("History", page, shortcut=shortcut)
    window.closed.connect(page.shutdown)
    return page
