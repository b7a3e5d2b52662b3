"""Painted building blocks of the station window.

Each widget is told what to show with a setter and paints on ``update()``; none of them knows
about the worker. A part's picture is drawn by :mod:`inspector_gui.part_pictures` at the size it is
shown at, and kept until the part, the size or the heatmap toggle changes; a view given a
:class:`~inspector_gui.picture_composer.PictureComposer` has it drawn on the composer's thread.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.common.types import InspectedPart, Verdict

from . import theme
from .part_pictures import (
    FRAME_PX,
    font,
    render_view,
)
from .picture_composer import ComposerClient, PictureComposer

log = logging.getLogger(__name__)


# -- helpers --------------------------------------------------------------------------------


def local_time(moment: datetime) -> datetime:
    """Decisions are stored in UTC; operators read local time. Naive values are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone()


# -- the large part view --------------------------------------------------------------------


@dataclass(frozen=True)
class _Drawn:
    """A composed picture, the part it shows and its legend's caption."""

    key: tuple[object, ...]
    part: InspectedPart
    image: QImage
    legend: str | None


class PartView(ComposerClient, QWidget):
    """The newest (or selected) part, fitted into the widget with its aspect ratio kept.

    With the heatmap on, the Grad-CAM overlay is blended at display resolution; a thin frame in
    the verdict colour ties the picture to the banner, and a pill in the corner says whether the
    view follows the line (LIVE) or shows an older part (REVIEW).

    The picture (all but the pill) is drawn by :func:`~inspector_gui.part_pictures.render_view`;
    given a composer (:meth:`set_composer`) on the composer's thread: until it is ready (a few
    milliseconds) the view goes on showing the part before, picture, frame and badge together,
    never one part's picture in another's frame.
    """

    FRAME_PX = FRAME_PX

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._part: InspectedPart | None = None
        self._heatmap_visible = True
        self._live = True
        self._alarm: str | None = None  # e.g. "OFFLINE": the pill says so instead of LIVE
        self._caption = ""  # e.g. "last part 42 s ago": said in the pill
        self.show_pill = True  # the LIVE / REVIEW pill (off for the held bad part)
        self.show_legend = True
        self._composer: PictureComposer | None = None
        self._drawn: _Drawn | None = None  # of the current part, or of the one before until ready
        self._requested: tuple[object, ...] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    @property
    def part(self) -> InspectedPart | None:
        return self._part

    @property
    def heatmap_visible(self) -> bool:
        return self._heatmap_visible

    @property
    def legend_caption(self) -> str | None:
        """What the legend of the picture shown says (None: no legend)."""
        return self._drawn.legend if self._drawn is not None else None

    @property
    def picture_ready(self) -> bool:
        """Whether the view shows the current part's own picture (or it has none to show)."""
        key = self._wanted_key()
        return key is None or (self._drawn is not None and self._drawn.key == key)

    def set_part(self, part: InspectedPart | None) -> None:
        if part is not self._part:
            if self._drawn is not None and self._drawn.part is not self._part:
                self._drawn = None  # older than the part before: never shown again
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

    def set_caption(self, caption: str) -> None:
        if caption != self._caption:
            self._caption = caption
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(900, 700)

    def _wanted_key(self) -> tuple[object, ...] | None:
        """What the current part's picture at the current size is kept under (None: no picture)."""
        part = self._part
        if part is None or part.image is None:
            return None
        heat = self._heatmap_visible and part.heatmap is not None
        return (
            id(part),
            part.decision.part_id,
            self.width(),
            self.height(),
            self.devicePixelRatioF(),
            heat,
            self.show_legend,
        )

    def _job(self, key: tuple[object, ...]) -> Callable[[], tuple[QImage, str | None]]:
        part = self._part
        assert part is not None
        _, _, width, height, ratio, heat, legend = key
        return functools.partial(render_view, part, width, height, ratio, heat=heat, legend=legend)  # type: ignore[arg-type]

    def ensure_picture(self) -> None:
        """Compose the current part's picture now, on this thread, if it is not ready (for a
        screenshot that must show the newest part)."""
        key = self._wanted_key()
        if key is not None and (self._drawn is None or self._drawn.key != key):
            assert self._part is not None
            image, legend = self._job(key)()
            self._drawn = _Drawn(key, self._part, image, legend)
            self.update()

    def _on_composed(self, key: object, result: object) -> None:
        if key != self._requested or self._part is None or key != self._wanted_key():
            return
        assert isinstance(key, tuple)
        if isinstance(result, tuple):
            image, legend = result
        else:  # the drawing failed (logged): a black picture rather than none
            image, legend = QImage(), None
        self._drawn = _Drawn(key, self._part, image, legend)
        self.update()

    def _picture(self) -> _Drawn | None:
        """The picture to draw now: the current part's, or until it is composed the part's before."""
        key = self._wanted_key()
        if key is None:
            return None
        if self._drawn is not None and self._drawn.key == key:
            return self._drawn
        if self._composer is None:
            self.ensure_picture()
        elif key != self._requested:
            self._requested = key
            self._composer.request(id(self), key, self._job(key))
        return self._drawn

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        drawn = self._picture()
        part = self._part
        if drawn is not None:
            # composed at the view's size (after a resize, until the new one comes, scaled)
            painter.drawImage(QRectF(self.rect()), drawn.image)
        else:
            painter.fillRect(self.rect(), QColor(theme.VIEW_BACKGROUND))
            if part is None:
                self._draw_centered(painter, "Waiting for the first part…")
            elif part.image is None:
                self._draw_centered(painter, f"No image\n{part.decision.reason or 'no image'}")
        if self.show_pill and (part is not None or self._alarm is not None):
            self._draw_mode_pill(painter)
        painter.end()

    def _draw_centered(self, painter: QPainter, text: str) -> None:
        painter.setPen(QColor(theme.TEXT_MUTED))
        painter.setFont(font(22))
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, text)

    def _draw_mode_pill(self, painter: QPainter) -> None:
        if self._live and self._alarm is not None:
            text, background, foreground = f"⚠  {self._alarm}", QColor(theme.ALARM), QColor("#ffffff")
        elif self._live:
            text, background, foreground = "●  LIVE", QColor(theme.LIVE_BACKGROUND), QColor(theme.LIVE_TEXT)
        else:
            text, background, foreground = "❚❚  REVIEW", QColor(theme.NOT_INSPECTED), QColor("#1a1400")
        if self._caption:
            text = f"{text}  ·  {self._caption}"
        painter.setFont(font(16, QFont.Weight.Bold))
        width = painter.fontMetrics().horizontalAdvance(text) + 28
        pill = QRectF(24, 24, width, 34)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(background)
        painter.drawRoundedRect(pill, 17, 17)
        painter.setPen(foreground)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)


# -- verdict banner -------------------------------------------------------------------------


class VerdictBanner(QFrame):
    """The verdict in letters large enough to read from two metres, on its colour."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verdictBanner")
        self.setMinimumHeight(90)
        self._title = QLabel(self)
        self._title.setObjectName("verdictTitle")
        self._title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._glyph = QLabel(self)  # the verdict as a shape too: check, cross, question mark
        self._glyph.setObjectName("verdictGlyph")
        self._glyph.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._reason = QLabel(self)
        self._reason.setObjectName("verdictReason")
        self._reason.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._reason.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 14)
        layout.setSpacing(2)
        layout.addStretch(1)
        layout.addWidget(self._glyph)
        layout.addWidget(self._title)
        layout.addWidget(self._reason)
        layout.addStretch(1)
        self._verdict: Verdict | None = None
        self._colour = QColor()
        self._style_key: tuple[str, str, int] | None = None
        self._stale: str | None = None
        self._reason_text = ""
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

    @property
    def stale(self) -> str | None:
        """Why the verdict shown is not current (e.g. "last part 42 s ago"), or None."""
        return self._stale

    def glyph(self) -> str:
        return self._glyph.text()

    def set_verdict(
        self, verdict: Verdict | None, reason: str | None = None, *, stale: str | None = None
    ) -> None:
        """Show ``verdict``; with ``stale`` it is greyed out and says why it is not current."""
        self._verdict = verdict
        self._stale = stale if verdict is not None else None
        if verdict is None:
            title, background, foreground, size = "WAITING", theme.WAITING, theme.TEXT_MUTED, 56
        else:
            title = theme.VERDICT_LABELS[verdict]
            background = theme.VERDICT_COLOURS[verdict]
            foreground = theme.VERDICT_TEXT_COLOURS[verdict]
            # "NOT INSPECTED" is long; keep it on one line in the same panel width.
            size = 40 if verdict is Verdict.NOT_INSPECTED else 96
        if self._stale is not None:
            background, foreground = theme.WAITING, theme.TEXT_DIM
        self._colour = QColor(background)
        self._title.setText(title)
        self._glyph.setText(theme.VERDICT_GLYPHS[verdict] if verdict is not None else "")
        self._glyph.setVisible(verdict is not None and self._roomy())
        shown = f"{self._stale}: not current" if self._stale is not None else (reason or "")
        self._reason.setText(shown)
        self._reason.setVisible(bool(shown))
        # Style sheets override setFont(), so the sizes live in the sheet too. Re-applying a
        # sheet re-polishes the widget: only do it when the look actually changes.
        self._look = (background, foreground, size)
        self._apply_look()

    def _apply_look(self) -> None:
        background, foreground, size = self._look
        # The letters shrink with the banner on a small screen (1366 x 768 with an alarm shown)
        # rather than being cut off, and grow back on a large one.
        scale = min(1.0, max(0.4, self.height() / 270))
        key = (background, foreground, round(size * scale))
        if key != self._style_key:
            self._style_key = key
            self.setStyleSheet(
                f"QFrame#verdictBanner {{ background: {background}; border-radius: 12px; }}"
                f"QLabel {{ color: {foreground}; background: transparent; }}"
                f"QLabel#verdictTitle {{ font-size: {key[2]}px; font-weight: 900; letter-spacing: 2px; }}"
                f"QLabel#verdictGlyph {{ font-size: {max(20, round(44 * scale))}px; font-weight: 900; }}"
                f"QLabel#verdictReason {{ font-size: {max(15, round(18 * scale))}px; font-weight: 600; }}"
            )

    def _roomy(self) -> bool:
        """Room for the glyph above the word (on a short banner the word alone says it)."""
        return self.height() >= 170

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if hasattr(self, "_look"):
            self._apply_look()
            self._glyph.setVisible(self._verdict is not None and self._roomy())


# -- score bar ------------------------------------------------------------------------------


class ScoreBar(QWidget):
    """Score (0..1) as a filled bar with the threshold as a marker across it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._score: float | None = None
        self._threshold: float | None = None
        self._colour = QColor(theme.WAITING)
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(360, 56)

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
        track = QRectF(left, 14, right - left, 18)
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
        painter.setFont(font(11))
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
        layout.setContentsMargins(10, 4, 10, 4)
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
