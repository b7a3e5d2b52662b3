"""The history strip: the last parts, newest on the left, each with its verdict as colour, line
style and glyph (readable without colour vision). Clicking one emits ``part_selected``.

Each part's tile is drawn once (:func:`~inspector_gui.part_pictures.render_tile`), on the window's
composer thread when the strip has one, and kept while the part is in the strip; the strip moves
to new parts only once all their tiles are drawn, so it shifts in one step, never half-drawn.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QAbstractButton, QSizePolicy, QWidget

from core.common.types import InspectedPart

from . import theme
from .part_pictures import TILE_H, TILE_IMAGE_PX, TILE_W, render_tile
from .picture_composer import ComposerClient, PictureComposer
from .widgets import local_time


class Thumbnail(QAbstractButton):
    """A small picture of one earlier part with a border in its verdict colour."""

    SIZE = QSize(TILE_W, TILE_H)
    IMAGE_PX = TILE_IMAGE_PX

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._part: InspectedPart | None = None
        self._tile: QImage | None = None
        self._selected = False
        self.setFixedSize(self.SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    @property
    def part(self) -> InspectedPart | None:
        return self._part

    @property
    def selected(self) -> bool:
        return self._selected

    def set_part(self, part: InspectedPart | None, tile: QImage | None, selected: bool) -> None:
        changed = part is not self._part or selected != self._selected or tile is not self._tile
        self._part, self._tile, self._selected = part, tile, selected
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
        if self._part is None or self._tile is None:
            painter.setPen(QPen(QColor(theme.BORDER), 1, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(outer, 8, 8)
            painter.end()
            return
        painter.drawImage(QRectF(self.rect()), self._tile)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self._selected:  # white-edged when this part is in the big view
            painter.setPen(QPen(QColor(theme.TEXT), 2))
            painter.drawRoundedRect(outer.adjusted(-1, -1, 1, 1), 9, 9)
        if self.hasFocus():  # keyboard focus: a clear accent ring
            painter.setPen(QPen(QColor(theme.ACCENT), 3))
            painter.drawRoundedRect(outer.adjusted(-1, -1, 1, 1), 9, 9)
        painter.end()


@dataclass(frozen=True)
class _TileSlot:
    """A tile's request to the composer: one per part (``part_id``, ``id(part)``)."""

    key: tuple[str, int]


def _tile_key(part: InspectedPart) -> tuple[str, int]:
    return part.decision.part_id, id(part)


class HistoryStrip(ComposerClient, QWidget):
    """The last few parts, newest on the left. Clicking one emits :attr:`part_selected`."""

    part_selected = Signal(object)  # InspectedPart

    def __init__(self, capacity: int = 12, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbs = [Thumbnail(self) for _ in range(capacity)]
        self._tiles: dict[tuple[str, int], QImage] = {}  # of the parts shown and wanted
        self._wanted: list[InspectedPart] = []
        self._selected_id: str | None = None
        self._composer: PictureComposer | None = None
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
        """Show ``parts`` newest first; the one with ``selected_id`` gets a highlight. With a
        composer the strip moves once the new parts' tiles are drawn (a few milliseconds)."""
        self._wanted = list(parts)[: len(self._thumbs)]
        self._selected_id = selected_id
        missing = {_TileSlot(_tile_key(p)): p for p in self._wanted if _tile_key(p) not in self._tiles}
        if self._composer is None:
            for slot, part in missing.items():
                self._tiles[slot.key] = render_tile(part, self.devicePixelRatioF())
        else:
            # Parts that left the strip before their turn are not drawn at all.
            self._composer.retain(missing.keys(), kind=_TileSlot)
            for slot, part in missing.items():
                job = functools.partial(render_tile, part, self.devicePixelRatioF())
                self._composer.request(slot, slot, job, priority=1)
        self._show_if_ready()

    def _show_if_ready(self) -> None:
        wanted = self._wanted
        if any(_tile_key(p) not in self._tiles for p in wanted):
            return
        padded: list[InspectedPart | None] = [*wanted, *[None] * (len(self._thumbs) - len(wanted))]
        for thumb, part in zip(self._thumbs, padded, strict=True):
            if part is None:
                thumb.set_part(None, None, False)
            else:
                thumb.set_part(part, self._tiles[_tile_key(part)], part.decision.part_id == self._selected_id)
        keep = {_tile_key(p) for p in wanted}
        self._tiles = {k: v for k, v in self._tiles.items() if k in keep}

    def _on_composed(self, key: object, result: object) -> None:
        if not isinstance(key, _TileSlot) or not any(_tile_key(p) == key.key for p in self._wanted):
            return
        self._tiles[key.key] = result if isinstance(result, QImage) else QImage()
        self._show_if_ready()

    def ensure_pictures(self) -> None:
        """Draw the missing tiles now, on this thread (for a screenshot)."""
        for part in self._wanted:
            if _tile_key(part) not in self._tiles:
                self._tiles[_tile_key(part)] = render_tile(part, self.devicePixelRatioF())
        self._show_if_ready()

    def pictures_ready(self) -> bool:
        """Whether the strip shows the parts last set, every tile drawn (tests, screenshots)."""
        return all(t.part is p for t, p in zip(self._thumbs, self._wanted, strict=False))

    def _on_thumbnail_clicked(self, thumb: Thumbnail, *_checked: object) -> None:
        if thumb.part is not None:
            self.part_selected.emit(thumb.part)
