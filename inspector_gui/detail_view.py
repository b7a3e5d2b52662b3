"""The detail page: one part large, its heatmap, its facts and reviews; reviewing it from here.

The picture can be zoomed (wheel, +, -, 0 to fit) and the heatmap switched off or made fainter.
Other class-activation methods (``core.model.review_cam``) are computed on demand on their own
thread from the station's model bundle; the part is read and the review recorded on the history
reader's thread. A review is a new row linked to the decision, which stays as it was; it is made
as the logged-in user, and ``core`` refuses (and records) anyone who may not review, whatever
this page shows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QKeySequence, QPixmap, QShortcut, QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core.common.types import Verdict
from core.imaging.overlay import make_overlay
from core.storage.records import Review

from . import theme
from .history_model import PartDetail, ReaderThread
from .part_pictures import rgb_to_qimage
from .review_style import REVIEW_STYLE
from .widgets import local_time

log = logging.getLogger(__name__)

ActorProvider = Callable[[], object | None]
CAM_METHODS = ("gradcam++", "gradcam", "xgradcam", "layercam", "eigencam", "scorecam", "ablationcam")


class CamWorker(QObject):
    """Computes another CAM method for one picture, on its own thread (the model loads there once).

    Signals:
        computed(str, str, object): part id, method, uint8 heatmap.
        failed(str): why it could not be computed.
    """

    computed = Signal(str, str, object)
    failed = Signal(str)

    def __init__(self, bundle: Path) -> None:
        super().__init__()
        self._bundle = bundle
        self._reviewer: object | None = None
        self.thread_ids: set[int] = set()

    @Slot(str, object, str)
    def compute(self, part_id: str, image: np.ndarray, method: str) -> None:
        self.thread_ids.add(threading.get_ident())
        try:
            from core.model.review_cam import Reviewer

            if self._reviewer is None:
                self._reviewer = Reviewer(self._bundle, device="cpu")
            assert isinstance(self._reviewer, Reviewer)
            _score, heatmap = self._reviewer.explain(image, method)
        except Exception as exc:  # a missing extra, a refused bundle: said on the page
            log.warning("%s for %s not computed: %s", method, part_id, exc)
            self.failed.emit(f"{method} could not be computed: {exc}")
            return
        self.computed.emit(part_id, method, heatmap)


class ZoomView(QGraphicsView):
    """The picture, zoomable with the wheel; ``fit`` shows it whole."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._scene.addItem(self._item)
        self.setScene(self._scene)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setStyleSheet(f"background: {theme.VIEW_BACKGROUND}; border: none;")
        self.zoom = 1.0

    def set_pixmap(self, pixmap: QPixmap | None, *, keep_zoom: bool) -> None:
        self._item.setPixmap(pixmap or QPixmap())
        self._scene.setSceneRect(self._item.boundingRect())
        if not keep_zoom:
            self.fit()

    def fit(self) -> None:
        if self._item.pixmap().isNull():
            return
        self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom = self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        factor = max(0.05, min(40.0, self.zoom * factor)) / self.zoom
        self.scale(factor, factor)
        self.zoom *= factor

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        self.zoom_by(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)  # type: ignore[arg-type]
        if abs(self.zoom - 1.0) < 1e-9 or self.property("fitted"):
            self.fit()


class DetailView(QWidget):
    """The supervisor's detail page for one part.

    Args:
        reader: The reader thread shared with the history page.
        actor: Returns the logged-in user's ``Actor`` (H3's session), or None when nobody is.
        bundle: The station's model bundle folder, for other CAM methods (None: not offered).

    Signals:
        reviewed(Review): a review was recorded (the decision itself is unchanged).
        back_requested(): the user wants the history again (Esc).
    """

    reviewed = Signal(object)
    back_requested = Signal()
    _detail_requested = Signal(str)
    _review_requested = Signal(str, object, object, object)
    _cam_requested = Signal(str, object, str)

    def __init__(
        self,
        reader: ReaderThread,
        *,
        actor: ActorProvider,
        bundle: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("detailView")
        self.setStyleSheet(REVIEW_STYLE)
        self._actor = actor
        self.detail: PartDetail | None = None
        self.cam_heatmap: tuple[str, np.ndarray] | None = None  # (method, heatmap) shown instead
        self.message = ""
        self._reader = reader
        self._detail_requested.connect(reader.reader.load_detail)
        self._review_requested.connect(reader.reader.review)
        reader.reader.detail_loaded.connect(self._on_reader_detail_loaded)
        reader.reader.reviewed.connect(self._on_reader_reviewed)
        reader.reader.failed.connect(self._on_reader_failed)
        self._cam_thread: QThread | None = None
        self.cam_worker: CamWorker | None = None
        if bundle is not None:
            self.cam_worker = CamWorker(Path(bundle))
            self._cam_thread = QThread()
            self._cam_thread.setObjectName("cam-worker")
            self.cam_worker.moveToThread(self._cam_thread)
            self._cam_requested.connect(self.cam_worker.compute)
            self.cam_worker.computed.connect(self._on_cam_worker_computed)
            self.cam_worker.failed.connect(self._on_cam_worker_failed)
            self._cam_thread.start()
        self._build()

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        left = QVBoxLayout()
        tools = QHBoxLayout()
        self.back_button = QPushButton("◀ History")
        self.back_button.clicked.connect(self.back_requested)
        self.heatmap_box = QCheckBox("Heatmap")
        self.heatmap_box.setChecked(True)
        self.heatmap_box.toggled.connect(self._redraw)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setFixedWidth(140)
        self.opacity.valueChanged.connect(self._redraw)
        opacity_label = QLabel("Opacity")
        opacity_label.setObjectName("headerMuted")
        self.zoom_in = QPushButton("+")
        self.zoom_out = QPushButton("−")
        self.zoom_fit = QPushButton("Fit")
        self.cam_choice = QComboBox()
        self.cam_choice.addItem("Station heatmap", "")
        for method in CAM_METHODS:
            self.cam_choice.addItem(method, method)
        self.cam_choice.setEnabled(self.cam_worker is not None)
        if self.cam_worker is None:
            self.cam_choice.setToolTip("Other CAM methods need the station's model bundle")
        self.cam_choice.currentIndexChanged.connect(self._on_cam_choice_changed)
        for widget in (
            self.back_button, self.heatmap_box, opacity_label, self.opacity, self.zoom_out, self.zoom_in,
            self.zoom_fit, self.cam_choice,
        ):  # fmt: skip
            tools.addWidget(widget)
        tools.addStretch(1)
        left.addLayout(tools)
        self.view = ZoomView()
        self.view.setProperty("fitted", True)
        self.zoom_in.clicked.connect(lambda: self._zoom(1.25))
        self.zoom_out.clicked.connect(lambda: self._zoom(0.8))
        self.zoom_fit.clicked.connect(self._fit)
        left.addWidget(self.view, 1)
        self.picture_note = QLabel("")
        self.picture_note.setObjectName("headerMuted")
        left.addWidget(self.picture_note)
        layout.addLayout(left, 3)

        side = QFrame()
        side.setObjectName("panel")
        side.setMinimumWidth(360)
        side_layout = QVBoxLayout(side)
        self.verdict_label = QLabel("—")
        self.verdict_label.setStyleSheet("font-size: 28px; font-weight: 800;")
        side_layout.addWidget(self.verdict_label)
        form = QFormLayout()
        self.fields: dict[str, QLabel] = {}
        for name in ("Score", "Threshold", "Model", "Station", "Time", "Source", "Part id", "Reason"):
            label = QLabel("")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[name] = label
            form.addRow(name, label)
        side_layout.addLayout(form)
        side_layout.addWidget(QLabel("Reviews"))
        self.review_list = QListWidget()
        self.review_list.setMaximumHeight(150)
        side_layout.addWidget(self.review_list)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (optional)")
        side_layout.addWidget(self.comment)
        buttons = QHBoxLayout()
        self.confirm_button = QPushButton("✔ &Confirm")
        self.good_button = QPushButton("Truly &GOOD")
        self.bad_button = QPushButton("Truly &BAD")
        self.confirm_button.clicked.connect(self.confirm)
        self.good_button.clicked.connect(lambda: self.submit_review(Verdict.GOOD))
        self.bad_button.clicked.connect(lambda: self.submit_review(Verdict.BAD))
        for button in (self.confirm_button, self.good_button, self.bad_button):
            buttons.addWidget(button)
        side_layout.addLayout(buttons)
        self.signer_label = QLabel("")
        self.signer_label.setObjectName("headerMuted")
        side_layout.addWidget(self.signer_label)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        side_layout.addWidget(self.message_label)
        side_layout.addStretch(1)
        layout.addWidget(side, 2)

        for key, slot in (
            ("+", lambda: self._zoom(1.25)),
            ("-", lambda: self._zoom(0.8)),
            ("0", self._fit),
            ("H", self.heatmap_box.toggle),
            ("Esc", self.back_requested.emit),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self._set_review_enabled(False)

    # -- showing a part ---------------------------------------------------------------------------

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)  # type: ignore[arg-type]
        self.update_signer()

    def update_signer(self) -> None:
        """Say who a review would be recorded as (the session may have changed since)."""
        actor = self._actor()
        name = getattr(actor, "name", None)
        role = getattr(getattr(actor, "role", None), "value", "")
        self.signer_label.setText(
            f"Reviews are recorded as {name} ({role}); Alt+C, Alt+G, Alt+B"
            if name
            else "Nobody is logged in: log in as a supervisor to review"
        )

    def open_part(self, part_id: str) -> None:
        """Read the part on the reader's thread and show it when it arrives."""
        self.update_signer()
        self.cam_heatmap = None
        self.cam_choice.blockSignals(True)
        self.cam_choice.setCurrentIndex(0)
        self.cam_choice.blockSignals(False)
        self._set_message("Loading…")
        self._detail_requested.emit(part_id)

    @Slot(object)
    def _on_reader_detail_loaded(self, detail: PartDetail) -> None:
        same_part = self.detail is not None and self.detail.decision.part_id == detail.decision.part_id
        self.detail = detail
        d = detail.decision
        self.verdict_label.setText(theme.VERDICT_LABELS[d.verdict])
        self.verdict_label.setStyleSheet(
            f"font-size: 28px; font-weight: 800; color: {theme.VERDICT_COLOURS[d.verdict]};"
        )
        values = {
            "Score": "—" if d.score is None else f"{d.score:.4f}",
            "Threshold": "—" if d.threshold is None else f"{d.threshold:.4f}",
            "Model": (detail.model_name or "") + (f" ({d.model_hash[:12]})" if d.model_hash else "—"),
            "Station": d.station,
            "Time": local_time(d.created_at).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "Source": d.source_ref,
            "Part id": d.part_id,
            "Reason": d.reason or "",
        }
        for name, value in values.items():
            self.fields[name].setText(value)
        self.review_list.clear()
        for review in detail.reviews:
            self.review_list.addItem(_review_line(review))
        if not detail.reviews:
            self.review_list.addItem("not reviewed yet")
        self.picture_note.setText(detail.problem or (detail.image_file or ""))
        self._set_review_enabled(True)
        self.confirm_button.setEnabled(d.verdict is not Verdict.NOT_INSPECTED)
        if not same_part:
            self._set_message("")
        self._redraw(keep_zoom=same_part)

    def _redraw(self, *_args: object, keep_zoom: bool = True) -> None:
        detail = self.detail
        if detail is None or detail.image is None:
            self.view.set_pixmap(None, keep_zoom=False)
            return
        heat = None
        if self.heatmap_box.isChecked():
            heat = self.cam_heatmap[1] if self.cam_heatmap is not None else detail.heatmap
        # The heat on the absolute scale, as the live screen shows it: a confident good part is cold.
        # Another CAM method's map is a Grad-CAM like map: scaled by the score, never as the anomaly map.
        decision = detail.decision
        score = decision.heat_scale if self.cam_heatmap is None else (decision.score or 0.0)
        rgb = make_overlay(detail.image, heat, alpha=self.opacity.value() / 100.0, score=score)
        self.view.set_pixmap(QPixmap.fromImage(rgb_to_qimage(rgb)), keep_zoom=keep_zoom)

    def _zoom(self, factor: float) -> None:
        self.view.setProperty("fitted", False)
        self.view.zoom_by(factor)

    def _fit(self) -> None:
        self.view.setProperty("fitted", True)
        self.view.fit()

    # -- other CAM methods -----------------------------------------------------------------------

    @Slot(int)
    def _on_cam_choice_changed(self, _index: int) -> None:
        method = self.cam_choice.currentData()
        if not method:
            self.cam_heatmap = None
            self._redraw()
            return
        if self.detail is None or self.detail.image is None:
            return
        self._set_message(f"Computing {method}…")
        self._cam_requested.emit(self.detail.decision.part_id, self.detail.image, method)

    @Slot(str, str, object)
    def _on_cam_worker_computed(self, part_id: str, method: str, heatmap: np.ndarray) -> None:
        if (
            self.detail is None
            or self.detail.decision.part_id != part_id
            or self.cam_choice.currentData() != method
        ):
            return  # the user has moved on
        self.cam_heatmap = (method, heatmap)
        self._set_message(f"Showing {method} (computed now; the station's own heatmap is Grad-CAM)")
        self._redraw()

    @Slot(str)
    def _on_cam_worker_failed(self, message: str) -> None:
        self._set_message(f"⚠ {message}")

    # -- reviewing -----------------------------------------------------------------------------

    @Slot()
    def confirm(self) -> None:
        if self.detail is not None and self.detail.decision.verdict is not Verdict.NOT_INSPECTED:
            self.submit_review(self.detail.decision.verdict)

    def submit_review(self, verdict: Verdict) -> None:
        """Record a review as the logged-in user; core decides whether that user may."""
        if self.detail is None:
            return
        actor = self._actor()
        self.update_signer()
        if actor is None:
            self._set_message("⚠ Log in as a supervisor to review parts.")
            return
        comment = self.comment.text().strip() or None
        self._set_review_enabled(False)
        self._set_message("Recording the review…")
        self._review_requested.emit(self.detail.decision.part_id, verdict, comment, actor)

    @Slot(object)
    def _on_reader_reviewed(self, review: Review) -> None:
        self.comment.clear()
        self._set_message(f"Review recorded: {_review_line(review)}")
        self.reviewed.emit(review)

    @Slot(int, str)
    def _on_reader_failed(self, request: int, message: str) -> None:
        if request != 0:
            return  # the history page's
        self._set_review_enabled(self.detail is not None)
        self._set_message(f"⚠ {message}")

    def _set_review_enabled(self, enabled: bool) -> None:
        for button in (self.confirm_button, self.good_button, self.bad_button):
            button.setEnabled(enabled)

    def _set_message(self, text: str) -> None:
        self.message = text
        self.message_label.setText(text)

    def shutdown(self) -> None:
        """Stop the CAM thread (the reader belongs to the workspace)."""
        if self._cam_thread is not None and self._cam_thread.isRunning():
            self._cam_thread.quit()
            self._cam_thread.wait()


def _review_line(review: Review) -> str:
    when = local_time(review.created_at).strftime("%Y-%m-%d %H:%M")
    what = (
        "confirmed" if review.outcome.value == "confirmed" else f"overridden → {review.verdict.value.upper()}"
    )
    return f"{when} {review.user}: {what}" + (f" — {review.comment}" if review.comment else "")
