"""The history view's table model and the reader that fetches its pages off the GUI thread.

A :class:`HistoryReader` lives on its own ``QThread`` and opens its own use of the visual log
there (the station's writer is never shared). The :class:`HistoryModel` asks it for one keyset
page at a time (``core.storage.history``): first, next, previous, last. Rows are shown as soon
as the page arrives; the thumbnails follow in a second signal once the reader has decoded and
shrunk the page's pictures, so a slow disk never holds the rows back. Every request carries a
number, and an answer to an older request than the newest is dropped: a user who pages quickly
sees the page asked for last, never an older one arriving late.

The reader also does the detail view's reads and the review (``VisualLog.review`` with the
logged-in actor), so that every database call of the supervisor's pages runs on this thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    QThread,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QImage

from core.common.types import Decision, Verdict
from core.imaging.decode import read_image
from core.storage.history import HistoryCursor, HistoryPage, HistoryQuery, HistoryRow
from core.storage.records import ModelInfo, Review, ShiftDefinition

from . import theme
from .widgets import local_time

if TYPE_CHECKING:
    from core.storage import VisualLog

log = logging.getLogger(__name__)

LogOpener = Callable[[], "VisualLog"]
THUMB_PX = 56
PAGE_SIZE = 50
_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True, kw_only=True)
class LogInfo:
    """What the filter bar offers: stations, models and the shift plan stored in the log."""

    stations: tuple[str, ...]
    models: tuple[ModelInfo, ...]
    shifts: tuple[ShiftDefinition, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartDetail:
    """One part as the detail view shows it, read on the reader's thread."""

    decision: Decision
    image: np.ndarray | None  # uint8 grayscale, as stored
    heatmap: np.ndarray | None  # uint8, the station's Grad-CAM
    reviews: tuple[Review, ...]
    model_name: str | None
    image_file: str | None  # absolute path of the stored picture
    problem: str | None = None  # why the picture could not be shown


def thumbnail(image: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """A picture shrunk to fit ``size`` x ``size`` (area filter), aspect ratio kept."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def gray_qimage(gray: np.ndarray) -> QImage:
    """A QImage owning a copy of a uint8 grayscale array."""
    gray = np.ascontiguousarray(gray)
    h, w = gray.shape[:2]
    return QImage(gray.data, w, h, gray.strides[0], QImage.Format.Format_Grayscale8).copy()


class HistoryReader(QObject):
    """Reads the visual log for the supervisor's pages, on its own thread.

    Signals:
        info_loaded(LogInfo): stations, models and shifts.
        page_loaded(int, HistoryPage): the page of a request.
        count_loaded(int, int): how many rows match the request's query.
        thumbnails_loaded(int, dict): part id -> small uint8 picture, for a request's page.
        detail_loaded(PartDetail): a part for the detail view.
        reviewed(object): a ``Review`` was recorded.
        failed(int, str): a request failed (0 for detail and review), in plain words.
    """

    info_loaded = Signal(object)
    page_loaded = Signal(int, object)
    count_loaded = Signal(int, int)
    thumbnails_loaded = Signal(int, object)
    detail_loaded = Signal(object)
    reviewed = Signal(object)
    failed = Signal(int, str)

    def __init__(self, open_log: LogOpener) -> None:
        super().__init__()
        self._open_log = open_log
        self._log: VisualLog | None = None
        self.latest_request = 0  # written by the GUI thread: older requests are skipped
        self.latest_count_request = 0  # likewise for counts (paging keeps the query's count)
        self.thread_ids: set[int] = set()  # where the reads ran (tests: never the GUI thread)

    def _visual_log(self) -> VisualLog:
        self.thread_ids.add(threading.get_ident())
        if self._log is None:
            self._log = self._open_log()
        return self._log

    @Slot()
    def load_info(self) -> None:
        try:
            visual_log = self._visual_log()
            info = LogInfo(
                stations=tuple(visual_log.stations()),
                models=tuple(visual_log.models()),
                shifts=tuple(visual_log.shift_plan()),
            )
        except Exception as exc:  # StorageError and its kind: said on the page
            self._fail(0, exc)
            return
        self.info_loaded.emit(info)

    @Slot(int, object, object)
    def load_page(self, request: int, query: HistoryQuery, where: dict[str, Any]) -> None:
        if request < self.latest_request:
            return  # the user has asked for another page since
        try:
            visual_log = self._visual_log()
            page = visual_log.history(query, **where)
            self.page_loaded.emit(request, page)
            self.thumbnails_loaded.emit(request, self._thumbnails(visual_log, page))
        except Exception as exc:
            self._fail(request, exc)

    @Slot(int, object)
    def load_count(self, request: int, query: HistoryQuery) -> None:
        if request < self.latest_count_request:
            return  # the filters have changed since: that count is wanted no more
        try:
            self.count_loaded.emit(request, self._visual_log().history_count(query))
        except Exception as exc:
            self._fail(request, exc)

    def _thumbnails(self, visual_log: VisualLog, page: HistoryPage) -> dict[str, np.ndarray]:
        thumbs: dict[str, np.ndarray] = {}
        for row in page.rows:
            path = row.decision.image_path
            if path is None:
                continue
            try:
                thumbs[row.decision.part_id] = thumbnail(read_image(visual_log.media_path(path)))
            except Exception:  # a missing or damaged file: the row shows "no image"
                log.debug("no thumbnail for %s", row.decision.part_id, exc_info=True)
        return thumbs

    @Slot(str)
    def load_detail(self, part_id: str) -> None:
        try:
            visual_log = self._visual_log()
            decision = visual_log.get(part_id)
            if decision is None:
                raise KeyError(f"no part {part_id} in the visual log")
            image = heatmap = None
            image_file = problem = None
            if decision.image_path is not None:
                image_file = str(visual_log.media_path(decision.image_path))
                try:
                    image = read_image(visual_log.media_path(decision.image_path))
                except Exception as exc:
                    problem = f"the picture cannot be read: {exc}"
            else:
                problem = decision.reason or "no picture was kept"
            heatmap = visual_log.load_heatmap(decision)
            names = {m.hash: m.name for m in visual_log.models()}
            detail = PartDetail(
                decision=decision,
                image=image,
                heatmap=heatmap,
                reviews=tuple(visual_log.reviews_of(part_id)),
                model_name=names.get(decision.model_hash) if decision.model_hash else None,
                image_file=image_file,
                problem=problem,
            )
        except Exception as exc:
            self._fail(0, exc)
            return
        self.detail_loaded.emit(detail)

    @Slot(str, object, object, object)
    def review(self, part_id: str, verdict: Verdict, comment: str | None, actor: object) -> None:
        """Record a review as ``actor`` (core refuses a user who may not review, and records it)."""
        try:
            review = self._visual_log().review(part_id, verdict=verdict, actor=actor, comment=comment)  # type: ignore[arg-type]
        except Exception as exc:
            self._fail(0, exc)
            return
        self.reviewed.emit(review)
        self.load_detail(part_id)

    def _fail(self, request: int, exc: Exception) -> None:
        log.warning("history reader: %s", exc)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        self.failed.emit(request, message or type(exc).__name__)

    @Slot()
    def close(self) -> None:
        """Close the log on the reader's own thread, just before the thread ends."""
        if self._log is not None:
            try:
                self._log.close()
            except Exception:
                log.debug("closing the history reader's log failed", exc_info=True)
            self._log = None


class ReaderThread(QObject):
    """A :class:`HistoryReader` on its own started ``QThread``; ``shutdown`` closes both."""

    _close_requested = Signal()

    def __init__(self, open_log: LogOpener, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.reader = HistoryReader(open_log)
        self.thread = QThread()
        self.thread.setObjectName("history-reader")
        self.reader.moveToThread(self.thread)
        self._close_requested.connect(self.reader.close, Qt.ConnectionType.BlockingQueuedConnection)
        self.thread.start()

    def shutdown(self) -> None:
        if self.thread.isRunning():
            self._close_requested.emit()  # after any read in flight: the log closes where it opened
            self.thread.quit()
            self.thread.wait()


COLUMNS = ("", "Time", "Station", "Verdict", "Score", "Threshold", "Review", "Model", "Source")
_THUMB, _TIME, _STATION, _VERDICT, _SCORE, _THRESHOLD, _REVIEW, _MODEL, _SOURCE = range(len(COLUMNS))


class HistoryModel(QAbstractTableModel):
    """One page of the history at a time, fetched by a :class:`HistoryReader`.

    Args:
        reader: A reader (its thread started), shared with the detail view; or None to make one
            from ``open_log``, owned and shut down by the model.
        open_log: Opens the visual log (called on the reader's thread).
        page_size: Rows per page.

    Signals:
        page_changed(): a new page is shown (rows; thumbnails follow).
        count_changed(int): the number of rows matching the query.
        failed(str): the log could not be read.
    """

    page_changed = Signal()
    count_changed = Signal(int)
    failed = Signal(str)
    _page_requested = Signal(int, object, object)
    _count_requested = Signal(int, object)

    def __init__(
        self,
        reader: ReaderThread | None = None,
        *,
        open_log: LogOpener | None = None,
        page_size: int = PAGE_SIZE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if reader is None:
            if open_log is None:
                raise ValueError("give a reader or a way to open the log")
            reader = ReaderThread(open_log)
            self._owns_reader = True
        else:
            self._owns_reader = False
        self._reader = reader
        self._page_size = page_size
        self._query = HistoryQuery()
        self._page: HistoryPage | None = None
        self._rows: tuple[HistoryRow, ...] = ()
        self._thumbs: dict[str, QImage] = {}
        self._request = 0
        self._shown_request = 0
        self._thumbs_request = 0
        self._count_request = 0
        self.total: int | None = None
        self.page_number: int | None = 1  # 1-based from the first page; None after "last"
        self._pending_number: int | None = 1
        self.error: str | None = None
        self._page_requested.connect(reader.reader.load_page)
        self._count_requested.connect(reader.reader.load_count)
        reader.reader.page_loaded.connect(self._on_reader_page_loaded)
        reader.reader.thumbnails_loaded.connect(self._on_reader_thumbnails_loaded)
        reader.reader.count_loaded.connect(self._on_reader_count_loaded)
        reader.reader.failed.connect(self._on_reader_failed)

    # -- state ---------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        return self._page_size

    @property
    def query(self) -> HistoryQuery:
        return self._query

    @property
    def page(self) -> HistoryPage | None:
        return self._page

    @property
    def loading(self) -> bool:
        """A page was asked for and has not arrived yet."""
        return self._shown_request != self._request

    @property
    def thumbnails_pending(self) -> int:
        """1 while the shown page's thumbnails are still being made, else 0."""
        return int(self._thumbs_request != self._request)

    def row_at(self, row: int) -> HistoryRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def thumbnail_of(self, part_id: str) -> QImage | None:
        return self._thumbs.get(part_id)

    # -- asking for pages -------------------------------------------------------------------

    def set_query(self, query: HistoryQuery) -> None:
        """Show the first page of ``query`` and count its rows."""
        self._query = query
        self.total = None
        self._ask({}, number=1)
        self._count_request = self._request
        self._reader.reader.latest_count_request = self._request
        self._count_requested.emit(self._request, query)

    def refresh(self) -> None:
        self.set_query(self._query)

    def first_page(self) -> None:
        self._ask({}, number=1)

    def next_page(self) -> None:
        if self._page is not None and self._page.has_next and self._page.last is not None:
            self._ask(
                {"after": self._page.last}, number=None if self.page_number is None else self.page_number + 1
            )

    def previous_page(self) -> None:
        if self._page is not None and self._page.has_previous and self._page.first is not None:
            number = None if self.page_number is None else max(1, self.page_number - 1)
            self._ask({"before": self._page.first}, number=number)

    def last_page(self) -> None:
        self._ask({"from_end": True}, number=None)

    def _ask(self, where: dict[str, Any], *, number: int | None) -> None:
        self._request += 1
        self._pending_number = number
        self._reader.reader.latest_request = self._request
        self._page_requested.emit(self._request, self._query, {**where, "limit": self._page_size})

    # -- answers ---------------------------------------------------------------------------

    @Slot(int, object)
    def _on_reader_page_loaded(self, request: int, page: HistoryPage) -> None:
        if request != self._request:
            return  # an older answer: a newer page was asked for since
        self.beginResetModel()
        self._page = page
        self._rows = page.rows
        self._thumbs = {}
        self._shown_request = request
        self.page_number = self._pending_number
        if self.page_number is None and not page.has_previous:
            self.page_number = 1
        self.error = None
        self.endResetModel()
        self.page_changed.emit()

    @Slot(int, object)
    def _on_reader_thumbnails_loaded(self, request: int, thumbs: dict[str, np.ndarray]) -> None:
        if request != self._request:
            return
        self._thumbs = {part_id: gray_qimage(image) for part_id, image in thumbs.items()}
        self._thumbs_request = request
        if self._rows:
            self.dataChanged.emit(
                self.index(0, _THUMB),
                self.index(len(self._rows) - 1, _THUMB),
                [Qt.ItemDataRole.DecorationRole],
            )

    @Slot(int, int)
    def _on_reader_count_loaded(self, request: int, total: int) -> None:
        if request == self._count_request:  # a count of an earlier query is dropped
            self.total = total
            self.count_changed.emit(total)

    @Slot(int, str)
    def _on_reader_failed(self, request: int, message: str) -> None:
        if request == 0 or request != self._request:
            return  # the detail view's, or a stale request's
        self._shown_request = self._thumbs_request = request
        self.error = message
        self.failed.emit(message)

    # -- Qt's model interface ---------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row_at(index.row())
        if row is None:
            return None
        d = row.decision
        column = index.column()
        if role == Qt.ItemDataRole.DecorationRole and column == _THUMB:
            return self._thumbs.get(d.part_id)
        if role == Qt.ItemDataRole.SizeHintRole and column == _THUMB:
            return QSize(THUMB_PX + 8, THUMB_PX + 6)
        if role == Qt.ItemDataRole.ForegroundRole and column == _VERDICT:
            return QColor(theme.VERDICT_COLOURS[d.verdict])
        if role == Qt.ItemDataRole.UserRole:
            return d.part_id
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{d.part_id}\n{d.source_ref}" + (f"\n{d.reason}" if d.reason else "")
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == _TIME:
            return local_time(d.created_at).strftime("%Y-%m-%d %H:%M:%S")
        if column == _STATION:
            return d.station
        if column == _VERDICT:
            # Never colour alone: the word says it too.
            return theme.VERDICT_LABELS[d.verdict]
        if column == _SCORE:
            return "" if d.score is None else f"{d.score:.3f}"
        if column == _THRESHOLD:
            return "" if d.threshold is None else f"{d.threshold:.3f}"
        if column == _REVIEW:
            if row.review_outcome is None or row.review_verdict is None:
                return ""
            text = "confirmed" if row.review_outcome.value == "confirmed" else f"→ {row.review_verdict.value}"
            return text + (f" ({row.reviews})" if row.reviews > 1 else "")
        if column == _MODEL:
            return row.model_name or (d.model_hash[:12] if d.model_hash else "")
        if column == _SOURCE:
            return d.source_ref
        return None

    def close(self) -> None:
        """Stop the reader when the model owns it."""
        if self._owns_reader:
            self._reader.shutdown()


__all__ = ["HistoryCursor", "HistoryModel", "HistoryReader", "LogInfo", "PartDetail", "ReaderThread"]
