"""Painted building blocks of the station window.

Each widget is told what to show with a setter and paints on ``update()``; none of them knows
about threads or the worker. Overlays are made with :func:`core.imaging.overlay.make_overlay` at the
size they are shown at, and cached until the part, the size or the heatmap toggle changes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QAbstractButton, QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.common.types import InspectedPart, Verdict
from core.imaging.overlay import make_overlay

from . import theme

log = logging.getLogger(__name__)


# -- helpers --------------------------------------------------------------------------------


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB uint8 array (the array may be freed afterwards)."""
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888).copy()


def fit_size(image_w: int, image_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest (w, h) with the image's aspect ratio that fits the box; at least 1 x 1."""
    if image_w <= 0 or image_h <= 0 or box_w <= 0 or box_h <= 0:
        return 1, 1
    scale = min(box_w / image_w, box_h / image_h)
    return max(1, round(image_w * scale)), max(1, round(image_h * scale))


def local_time(moment: datetime) -> datetime:
    """Decisions are stored in UTC; operators read local time. Naive values are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone()


def heat_legend_image(width: int, height: int) -> QImage:
    """The colour ramp the overlay uses (OpenCV's JET), low on the left, for a legend."""
    ramp = np.tile(np.linspace(0, 255, max(2, width)).astype(np.uint8), (max(1, height), 1))
    rgb = cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[:, :, ::-1]
    return rgb_to_qimage(rgb)


def _font(pixel_size: int, weight: QFont.Weight = QFont.Weight.Normal, mono: bool = False) -> QFont:
    font = QFont("DejaVu Sans Mono" if mono else "DejaVu Sans")
    font.setStyleHint(QFont.StyleHint.Monospace if mono else QFont.StyleHint.SansSerif)
    font.setPixelSize(pixel_size)
    font.setWeight(weight)
    return font


# -- the large part view --------------------------------------------------------------------


class PartView(QWidget):
    """The newest (or selected) part, fitted into the widget with its aspect ratio kept.

    With the heatmap on, the Grad-CAM overlay is blended at display resolution; a thin frame in
    the verdict colour ties the picture to the banner, and a pill in the corner says whether the
    view follows the line (LIVE) or shows an older part (REVIEW).
    """

    FRAME_PX = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._part: InspectedPart | None = None
        self._heatmap_visible = True
        self._live = True
        self._alarm: str | None = None  # e.g. "OFFLINE": the pill says so instead of LIVE
        self._cache_key: tuple[object, ...] | None = None
        self._cache_image: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    @property
    def part(self) -> InspectedPart | None:
        return self._part

    @property
    def heatmap_visible(self) -> bool:
        return self._heatmap_visible

    def set_part(self, part: InspectedPart | None) -> None:
        if part is not self._part:
            self._part = part
            self.update()

    def set_heatmap_visible(self, visible: bool) -> None:
        if visible != self._heatmap_visible:
            self._heatmap_visible = visible
            self.update()

    def set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            self.update()

    @property
    def alarm(self) -> str | None:
        return self._alarm

    def set_alarm(self, alarm: str | None) -> None:
        """While the source is offline or an alarm is raised the view is not live news: the
        pill says ``alarm`` (a word, an icon and the alarm colour) instead of LIVE."""
        if alarm != self._alarm:
            self._alarm = alarm
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(900, 700)

    def _display_image(self, box_w: int, box_h: int, ratio: float) -> QImage | None:
        part = self._part
        if part is None or part.image is None:
            return None
        image_h, image_w = part.image.shape[:2]
        width, height = fit_size(image_w, image_h, box_w, box_h)
        pixel_size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        heat = part.heatmap if self._heatmap_visible else None
        key = (id(part), part.decision.part_id, pixel_size, heat is not None)
        if key != self._cache_key:
            try:
                rgb = make_overlay(part.image, heat, size=pixel_size)
            except Exception:  # noqa: BLE001 - a malformed image must not take the window down
                log.exception("could not draw part %s", part.decision.part_id)
                rgb = np.zeros((pixel_size[1], pixel_size[0], 3), np.uint8)
            image = rgb_to_qimage(rgb)
            image.setDevicePixelRatio(ratio)
            self._cache_key, self._cache_image = key, image
        return self._cache_image

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(theme.VIEW_BACKGROUND))
        part = self._part
        margin = 18
        box = self.rect().adjusted(margin, margin, -margin, -margin)
        image = self._display_image(box.width(), box.height(), self.devicePixelRatioF())
        if part is None:
            self._draw_centered(painter, "Waiting for the first part…")
        elif image is None:
            reason = part.decision.reason or "no image"
            self._draw_centered(painter, f"No image\n{reason}")
        else:
            width = round(image.width() / image.devicePixelRatio())
            height = round(image.height() / image.devicePixelRatio())
            left = box.left() + (box.width() - width) // 2
            top = box.top() + (box.height() - height) // 2
            target = QRectF(left, top, width, height)
            frame = theme.verdict_colour(part.decision.verdict)
            pen = QPen(frame, self.FRAME_PX)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            painter.setPen(pen)
            half = self.FRAME_PX / 2
            painter.drawRect(target.adjusted(-half, -half, half, half))
            painter.drawImage(target, image)
            if self._heatmap_visible and part.heatmap is not None:
                self._draw_legend(painter, target)
        if part is not None or self._alarm is not None:
            self._draw_mode_pill(painter)
        painter.end()

    def _draw_centered(self, painter: QPainter, text: str) -> None:
        painter.setPen(QColor(theme.TEXT_MUTED))
        painter.setFont(_font(22))
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, text)

    def _draw_legend(self, painter: QPainter, image_rect: QRectF) -> None:
        """The colour ramp, in the image's lower right corner (a part's background is black)."""
        width, height = 150, 10
        if image_rect.width() < width + 60 or image_rect.height() < 120:
            return
        left = image_rect.right() - width - 22
        top = image_rect.bottom() - height - 18
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(10, 11, 13, 200))
        painter.drawRoundedRect(QRectF(left - 12, top - 26, width + 24, height + 36), 6, 6)
        painter.drawImage(QRectF(left, top, width, height), heat_legend_image(width, 1))
        painter.setPen(QColor(theme.TEXT_MUTED))
        painter.setFont(_font(11, QFont.Weight.Bold))
        text_box = QRectF(left, top - 22, width, 18)
        painter.drawText(text_box, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "LOW")
        painter.drawText(text_box, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, "HEAT")
        painter.drawText(text_box, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, "HIGH")

    def _draw_mode_pill(self, painter: QPainter) -> None:
        if self._live and self._alarm is not None:
            text, background, foreground = f"⚠  {self._alarm}", QColor(theme.ALARM), QColor("#ffffff")
        elif self._live:
            text, background, foreground = "●  LIVE", QColor(theme.LIVE_BACKGROUND), QColor(theme.LIVE_TEXT)
        else:
            text, background, foreground = "❚❚  REVIEW", QColor(theme.NOT_INSPECTED), QColor("#1a1400")
        font = _font(13, QFont.Weight.Bold)
        painter.setFont(font)
        width = painter.fontMetrics().horizontalAdvance(text) + 24
        pill = QRectF(28, 28, width, 28)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(background)
        painter.drawRoundedRect(pill, 14, 14)
        painter.setPen(foreground)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)


# -- verdict banner -------------------------------------------------------------------------


class VerdictBanner(QFrame):
    """The verdict in letters large enough to read from two metres, on its colour."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verdictBanner")
        self.setMinimumHeight(180)
        self._title = QLabel(self)
        self._title.setObjectName("verdictTitle")
        self._title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._reason = QLabel(self)
        self._reason.setObjectName("verdictReason")
        self._reason.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._reason.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 14)
        layout.setSpacing(2)
        layout.addStretch(1)
        layout.addWidget(self._title)
        layout.addWidget(self._reason)
        layout.addStretch(1)
        self._verdict: Verdict | None = None
        self._colour = QColor()
        self._style_key: tuple[str, str, int] | None = None
        self.set_verdict(None)

    def text(self) -> str:
        return self._title.text()

    def reason(self) -> str:
        return self._reason.text()

    def colour(self) -> QColor:
        return QColor(self._colour)

    @property
    def verdict(self) -> Verdict | None:
        return self._verdict

    def set_verdict(self, verdict: Verdict | None, reason: str | None = None) -> None:
        self._verdict = verdict
        if verdict is None:
            title, background, foreground, size = "WAITING", theme.WAITING, theme.TEXT_MUTED, 56
        else:
            title = theme.VERDICT_LABELS[verdict]
            background = theme.VERDICT_COLOURS[verdict]
            foreground = theme.VERDICT_TEXT_COLOURS[verdict]
            # "NOT INSPECTED" is long; keep it on one line in the same panel width.
            size = 40 if verdict is Verdict.NOT_INSPECTED else 104
        self._colour = QColor(background)
        self._title.setText(title)
        self._reason.setText(reason or "")
        self._reason.setVisible(bool(reason))
        # Style sheets override setFont(), so the sizes live in the sheet too. Re-applying a
        # sheet re-polishes the widget: only do it when the look actually changes.
        key = (background, foreground, size)
        if key != self._style_key:
            self._style_key = key
            self.setStyleSheet(
                f"QFrame#verdictBanner {{ background: {background}; border-radius: 12px; }}"
                f"QLabel {{ color: {foreground}; background: transparent; }}"
                f"QLabel#verdictTitle {{ font-size: {size}px; font-weight: 900; letter-spacing: 2px; }}"
                f"QLabel#verdictReason {{ font-size: 18px; font-weight: 600; }}"
            )


# -- score bar ------------------------------------------------------------------------------


class ScoreBar(QWidget):
    """Score (0..1) as a filled bar with the threshold as a marker across it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._score: float | None = None
        self._threshold: float | None = None
        self._colour = QColor(theme.WAITING)
        self.setMinimumHeight(64)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(360, 64)

    @property
    def score(self) -> float | None:
        return self._score

    @property
    def threshold(self) -> float | None:
        return self._threshold

    def set_values(self, score: float | None, threshold: float | None, colour: QColor) -> None:
        self._score = score if score is not None and math.isfinite(score) else None
        self._threshold = threshold if threshold is not None and math.isfinite(threshold) else None
        self._colour = QColor(colour)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        left, right = 8.0, self.width() - 8.0
        track = QRectF(left, 18, right - left, 20)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.VIEW_BACKGROUND))
        painter.drawRoundedRect(track, 6, 6)
        if self._score is not None:
            fill = QRectF(track)
            fill.setWidth(max(track.height(), track.width() * min(max(self._score, 0.0), 1.0)))
            path = QPainterPath()
            path.addRoundedRect(fill, 6, 6)
            painter.setBrush(self._colour)
            painter.drawPath(path)
        # scale ticks
        painter.setFont(_font(11))
        painter.setPen(QColor(theme.TEXT_DIM))
        for value in (0.0, 0.25, 0.5, 0.75, 1.0):
            x = track.left() + track.width() * value
            painter.drawLine(QPointF(x, track.bottom() + 3), QPointF(x, track.bottom() + 7))
            label_box = QRectF(x - 20, track.bottom() + 8, 40, 16)
            painter.drawText(label_box, Qt.AlignmentFlag.AlignCenter, f"{value:g}")
        if self._threshold is not None:
            x = track.left() + track.width() * min(max(self._threshold, 0.0), 1.0)
            painter.setPen(QPen(QColor(theme.TEXT), 3))
            painter.drawLine(QPointF(x, track.top() - 6), QPointF(x, track.bottom() + 6))
            marker = QPainterPath()
            marker.moveTo(x - 6, track.top() - 14)
            marker.lineTo(x + 6, track.top() - 14)
            marker.lineTo(x, track.top() - 6)
            marker.closeSubpath()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(theme.TEXT))
            painter.drawPath(marker)
        painter.end()


# -- counters -------------------------------------------------------------------------------


class CounterTile(QFrame):
    """One counter: a small caption over a large number."""

    def __init__(self, caption: str, colour: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tile")
        self._caption = QLabel(caption.upper(), self)
        self._caption.setObjectName("tileCaption")
        self._value = QLabel("0", self)
        self._value.setObjectName("tileValue")
        if colour:
            self._value.setStyleSheet(f"color: {colour};")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(0)
        layout.addWidget(self._caption)
        layout.addWidget(self._value)

    def value(self) -> str:
        return self._value.text()

    def set_value(self, text: str) -> None:
        if text != self._value.text():
            self._value.setText(text)


# -- labels ---------------------------------------------------------------------------------


class ElidedLabel(QLabel):
    """A label that shortens long text (paths, URLs) in the middle instead of growing."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full_text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full_text = text
        self.setToolTip(text)
        super().setText(text)
        self.update()

    def full_text(self) -> str:
        return self._full_text

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.setFont(self.font())
        elided = self.fontMetrics().elidedText(self._full_text, Qt.TextElideMode.ElideMiddle, self.width())
        painter.drawText(self.rect(), int(self.alignment()), elided)
        painter.end()


# -- history strip --------------------------------------------------------------------------


class Thumbnail(QAbstractButton):
    """A small picture of one earlier part with a border in its verdict colour."""

    SIZE = QSize(90, 122)
    IMAGE_PX = 78

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._part: InspectedPart | None = None
        self._image: QImage | None = None
        self._selected = False
        self.setFixedSize(self.SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    @property
    def part(self) -> InspectedPart | None:
        return self._part

    def set_part(self, part: InspectedPart | None, image: QImage | None, selected: bool) -> None:
        changed = part is not self._part or selected != self._selected
        self._part, self._image, self._selected = part, image, selected
        self.setEnabled(part is not None)
        if part is not None:
            decision = part.decision
            score = "—" if decision.score is None else f"{decision.score:.3f}"
            self.setToolTip(
                f"{theme.VERDICT_LABELS[decision.verdict]}  score {score}\n"
                f"{decision.source_ref}\n{local_time(decision.created_at):%Y-%m-%d %H:%M:%S}"
                + (f"\n{decision.reason}" if decision.reason else "")
            )
        else:
            self.setToolTip("")
        if changed:
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.SIZE

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        outer = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        part = self._part
        if part is None:
            painter.setPen(QPen(QColor(theme.BORDER), 1, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(outer, 8, 8)
            painter.end()
            return
        colour = theme.verdict_colour(part.decision.verdict)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.PANEL_RAISED))
        painter.drawRoundedRect(outer, 8, 8)
        image_box = QRectF(outer.left() + 6, outer.top() + 6, outer.width() - 12, self.IMAGE_PX)
        painter.fillRect(image_box, QColor(theme.VIEW_BACKGROUND))
        if self._image is not None:
            w = self._image.width() / self._image.devicePixelRatio()
            h = self._image.height() / self._image.devicePixelRatio()
            target = QRectF(image_box.center().x() - w / 2, image_box.center().y() - h / 2, w, h)
            painter.drawImage(target, self._image)
        else:
            painter.setPen(QColor(theme.TEXT_DIM))
            painter.setFont(_font(10, QFont.Weight.Bold))
            painter.drawText(image_box, Qt.AlignmentFlag.AlignCenter, "NO\nIMAGE")
        # verdict border; thicker and white-edged when this part is shown in the big view
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(colour, 4))
        painter.drawRoundedRect(outer.adjusted(2, 2, -2, -2), 7, 7)
        if self._selected:
            painter.setPen(QPen(QColor(theme.TEXT), 2))
            painter.drawRoundedRect(outer.adjusted(-1, -1, 1, 1), 9, 9)
        decision = part.decision
        text = "—" if decision.score is None else f"{decision.score:.3f}"
        painter.setPen(QColor(theme.TEXT))
        painter.setFont(_font(12, QFont.Weight.Bold, mono=True))
        caption = QRectF(
            outer.left(), image_box.bottom() + 2, outer.width(), outer.bottom() - image_box.bottom() - 6
        )
        painter.drawText(caption, Qt.AlignmentFlag.AlignCenter, text)
        painter.end()


class HistoryStrip(QWidget):
    """The last few parts, newest on the left. Clicking one emits :attr:`part_selected`."""

    part_selected = Signal(object)  # InspectedPart

    def __init__(self, capacity: int = 12, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbs = [Thumbnail(self) for _ in range(capacity)]
        self._cache: dict[tuple[str, int], QImage] = {}
        for thumb in self._thumbs:
            thumb.clicked.connect(partial(self._on_thumbnail_clicked, thumb))
        # Thumbnails are placed by hand: as many as fit are shown (the newest), so a narrow
        # screen loses the oldest ones instead of squeezing or clipping all of them.
        self.setMinimumSize(Thumbnail.SIZE.width(), Thumbnail.SIZE.height())
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    SPACING_PX = 6

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        count = len(self._thumbs)
        return QSize(count * (Thumbnail.SIZE.width() + self.SPACING_PX), Thumbnail.SIZE.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        step = Thumbnail.SIZE.width() + self.SPACING_PX
        fits = max(1, (self.width() + self.SPACING_PX) // step)
        for index, thumb in enumerate(self._thumbs):
            thumb.move(index * step, 0)
            thumb.setVisible(index < fits)

    @property
    def capacity(self) -> int:
        return len(self._thumbs)

    def thumbnails(self) -> list[Thumbnail]:
        return list(self._thumbs)

    def set_parts(self, parts: Sequence[InspectedPart], selected_id: str | None = None) -> None:
        """Show ``parts`` newest first; the one with ``selected_id`` gets a highlight."""
        shown = list(parts)[: len(self._thumbs)]
        keep: dict[tuple[str, int], QImage] = {}
        for thumb, part in zip(self._thumbs, shown + [None] * (len(self._thumbs) - len(shown)), strict=True):
            if part is None:
                thumb.set_part(None, None, False)
                continue
            key = (part.decision.part_id, id(part))
            image = self._cache.get(key)
            if image is None:
                image = self._make_thumbnail(part)
            if image is not None:
                keep[key] = image
            thumb.set_part(part, image, part.decision.part_id == selected_id)
        self._cache = keep

    def _make_thumbnail(self, part: InspectedPart) -> QImage | None:
        if part.image is None:
            return None
        ratio = self.devicePixelRatioF()
        image_h, image_w = part.image.shape[:2]
        box = Thumbnail.IMAGE_PX
        width, height = fit_size(image_w, image_h, box, box)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        try:
            rgb = make_overlay(part.image, part.heatmap, size=size)
        except Exception:  # noqa: BLE001 - one odd image must not break the strip
            log.exception("could not draw thumbnail of %s", part.decision.part_id)
            return None
        image = rgb_to_qimage(rgb)
        image.setDevicePixelRatio(ratio)
        return image

    def _on_thumbnail_clicked(self, thumb: Thumbnail, *_checked: object) -> None:
        if thumb.part is not None:
            self.part_selected.emit(thumb.part)
