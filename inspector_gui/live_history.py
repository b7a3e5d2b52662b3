"""The history strip: the last parts, newest on the left, each with its verdict as colour, line
style and glyph (readable without colour vision). Clicking one emits ``part_selected``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPen, QPixmap, QResizeEvent
from PySide6.QtWidgets import QAbstractButton, QSizePolicy, QWidget

from core.common.types import InspectedPart

from . import theme
from .picture_composer import PictureComposer, PictureRequest, compose_picture
from .widgets import _font, draw_verdict_badge, fit_size, local_time, verdict_pen

log = logging.getLogger(__name__)


class Thumbnail(QAbstractButton):
    """A small picture of one earlier part with a border in its verdict colour."""

    SIZE = QSize(88, 114)
    IMAGE_PX = 72

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._part: InspectedPart | None = None
        self._image: QImage | None = None
        self._selected = False
        self.tiles: dict[tuple[object, ...], QPixmap] = {}  # the strip's, shared by its thumbnails
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

    @property
    def has_picture(self) -> bool:
        """Whether the part's picture is drawn (or there is none to draw)."""
        return self._part is None or self._part.image is None or self._image is not None

    def set_image(self, image: QImage) -> None:
        """The picture of the part shown, once it is composed."""
        self._image = image
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.SIZE

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        part = self._part
        if part is None:
            painter = QPainter(self)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(QColor(theme.BORDER), 1, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(2, 2, -2, -2), 8, 8)
            painter.end()
            return
        # The strip moves by one place per new part: every thumbnail shows another part at each
        # repaint. Each part's tile is drawn once and kept by the strip, then only copied.
        ratio = self.devicePixelRatioF()
        key = (
            part.decision.part_id,
            id(part),
            self._selected,
            self.hasFocus(),
            ratio,
            self._image is not None,
        )
        tile = self.tiles.get(key)
        if tile is None:
            tile = QPixmap(round(self.width() * ratio), round(self.height() * ratio))
            tile.setDevicePixelRatio(ratio)
            tile.fill(Qt.GlobalColor.transparent)
            tile_painter = QPainter(tile)
            self._paint_part(tile_painter, part)
            tile_painter.end()
            self.tiles[key] = tile
        painter = QPainter(self)
        painter.drawPixmap(0, 0, tile)
        painter.end()

    def _paint_part(self, painter: QPainter, part: InspectedPart) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        outer = QRectF(self.rect()).adjusted(2, 2, -2, -2)
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
        elif part.image is None:
            painter.setPen(QColor(theme.TEXT_DIM))
            painter.setFont(_font(10, QFont.Weight.Bold))
            painter.drawText(image_box, Qt.AlignmentFlag.AlignCenter, "NO\nIMAGE")
        # verdict border (colour and line style); white-edged when this part is in the big view
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(verdict_pen(part.decision.verdict, 4))
        painter.drawRoundedRect(outer.adjusted(2, 2, -2, -2), 7, 7)
        draw_verdict_badge(painter, QPointF(outer.right() - 14, outer.top() + 14), 10, part.decision.verdict)
        if self._selected:
            painter.setPen(QPen(QColor(theme.TEXT), 2))
            painter.drawRoundedRect(outer.adjusted(-1, -1, 1, 1), 9, 9)
        if self.hasFocus():  # keyboard focus: a clear accent ring
            painter.setPen(QPen(QColor(theme.ACCENT), 3))
            painter.drawRoundedRect(outer.adjusted(-1, -1, 1, 1), 9, 9)
        decision = part.decision
        text = "—" if decision.score is None else f"{decision.score:.3f}"
        painter.setPen(QColor(theme.TEXT))
        painter.setFont(_font(15, QFont.Weight.Bold, mono=True))
        caption = QRectF(
            outer.left(), image_box.bottom() + 2, outer.width(), outer.bottom() - image_box.bottom() - 6
        )
        painter.drawText(caption, Qt.AlignmentFlag.AlignCenter, text)


@dataclass(frozen=True)
class _ThumbSlot:
    """A thumbnail's request to the composer: one per part (``part_id``, ``id(part)``)."""

    key: tuple[str, int]


class HistoryStrip(QWidget):
    """The last few parts, newest on the left. Clicking one emits :attr:`part_selected`."""

    part_selected = Signal(object)  # InspectedPart

    def __init__(self, capacity: int = 12, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbs = [Thumbnail(self) for _ in range(capacity)]
        self._cache: dict[tuple[str, int], QImage] = {}
        self._tiles: dict[tuple[object, ...], QPixmap] = {}
        self._composer: PictureComposer | None = None
        for thumb in self._thumbs:
            thumb.tiles = self._tiles
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

    def set_composer(self, composer: PictureComposer | None) -> None:
        """Compose thumbnails on ``composer``'s thread (None: here, when the strip is set)."""
        if self._composer is not None:
            self._composer.composed.disconnect(self._on_composed)
        self._composer = composer
        if composer is not None:
            composer.composed.connect(self._on_composed)

    @property
    def capacity(self) -> int:
        return len(self._thumbs)

    def thumbnails(self) -> list[Thumbnail]:
        return list(self._thumbs)

    def set_parts(self, parts: Sequence[InspectedPart], selected_id: str | None = None) -> None:
        """Show ``parts`` newest first; the one with ``selected_id`` gets a highlight."""
        shown = list(parts)[: len(self._thumbs)]
        keep: dict[tuple[str, int], QImage] = {}
        wanted: dict[_ThumbSlot, InspectedPart] = {}
        for thumb, part in zip(self._thumbs, shown + [None] * (len(self._thumbs) - len(shown)), strict=True):
            if part is None:
                thumb.set_part(None, None, False)
                continue
            key = (part.decision.part_id, id(part))
            image = self._cache.get(key)
            if image is None and part.image is not None:
                if self._composer is None:
                    image = compose_picture(self._thumbnail_request(part, key))
                else:
                    wanted[_ThumbSlot(key)] = part
            if image is not None:
                keep[key] = image
            thumb.set_part(part, image, part.decision.part_id == selected_id)
        self._cache = keep
        if self._composer is not None:
            # Parts that left the strip before their turn are not drawn at all.
            self._composer.retain(wanted.keys(), kind=_ThumbSlot)
            for slot, part in wanted.items():
                self._composer.request(slot, self._thumbnail_request(part, slot.key), priority=1)
        shown_ids = {part.decision.part_id for part in shown}
        for key in [k for k in self._tiles if k[0] not in shown_ids]:
            del self._tiles[key]

    def _thumbnail_request(self, part: InspectedPart, key: tuple[str, int]) -> PictureRequest:
        assert part.image is not None
        ratio = self.devicePixelRatioF()
        image_h, image_w = part.image.shape[:2]
        box = Thumbnail.IMAGE_PX
        width, height = fit_size(image_w, image_h, box, box)
        return PictureRequest(
            key=_ThumbSlot(key),
            image=part.image,
            heatmap=part.heatmap,
            size=(max(1, round(width * ratio)), max(1, round(height * ratio))),
            score=part.decision.heat_scale,
            ratio=ratio,
            label=part.decision.part_id,
        )

    def _on_composed(self, key: object, image: QImage) -> None:
        if not isinstance(key, _ThumbSlot):
            return
        for thumb in self._thumbs:
            part = thumb.part
            if part is not None and (part.decision.part_id, id(part)) == key.key:
                self._cache[key.key] = image
                thumb.set_image(image)

    def ensure_pictures(self) -> None:
        """Compose the missing thumbnails now, on this thread (for a screenshot)."""
        for thumb in self._thumbs:
            part = thumb.part
            if not thumb.has_picture and part is not None:
                key = (part.decision.part_id, id(part))
                self._cache[key] = image = compose_picture(self._thumbnail_request(part, key))
                thumb.set_image(image)

    def pictures_ready(self) -> bool:
        """Whether every thumbnail shown has its picture (tests, screenshots)."""
        return all(t.has_picture for t in self._thumbs)

    def _on_thumbnail_clicked(self, thumb: Thumbnail, *_checked: object) -> None:
        if thumb.part is not None:
            self.part_selected.emit(thumb.part)
