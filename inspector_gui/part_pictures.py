"""A part's pictures as the live screen shows them, drawn into ``QImage`` s on any thread.

The large view's picture (the part fitted to the view, its heatmap, the verdict frame and badge,
the legend) and the history strip's tiles are drawn here, by the window's composer thread (see
:mod:`inspector_gui.picture_composer`); the widgets only copy them to the screen. Everything
here paints on ``QImage`` with ``QPainter``, which Qt allows outside the GUI thread (``QPixmap``
it does not).
"""

from __future__ import annotations

import functools
import logging

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen

from core.common.types import InspectedPart, Verdict
from core.imaging.overlay import heat_ramp, make_overlay

from . import theme

log = logging.getLogger(__name__)

VIEW_MARGIN_PX = 18  # around the picture in the large view
FRAME_PX = 4  # the verdict frame around it


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


def font(pixel_size: int, weight: QFont.Weight = QFont.Weight.Normal, mono: bool = False) -> QFont:
    result = QFont("DejaVu Sans Mono" if mono else "DejaVu Sans")
    result.setStyleHint(QFont.StyleHint.Monospace if mono else QFont.StyleHint.SansSerif)
    result.setPixelSize(pixel_size)
    result.setWeight(weight)
    return result


@functools.lru_cache(maxsize=8)
def heat_legend_image(width: int, height: int) -> QImage:
    """The colour ramp the overlay uses (``HEAT_COLORMAP``), cold on the left, for a legend
    (made once per size: it is drawn with every picture)."""
    return rgb_to_qimage(np.repeat(heat_ramp(width), max(1, height), axis=0))


def verdict_pen(verdict: Verdict, width: float) -> QPen:
    """The verdict's frame: colour *and* line style, so it reads without colour vision.

    Good: solid; bad: dashed; not inspected: dotted.
    """
    pen = QPen(theme.verdict_colour(verdict), width)
    pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
    if verdict is Verdict.BAD:
        pen.setStyle(Qt.PenStyle.DashLine)
    elif verdict is Verdict.NOT_INSPECTED:
        pen.setStyle(Qt.PenStyle.DotLine)
    return pen


def draw_verdict_badge(painter: QPainter, centre: QPointF, radius: float, verdict: Verdict) -> None:
    """A round badge in the verdict colour with its glyph (check, cross, question mark)."""
    painter.save()
    painter.setPen(QPen(QColor(theme.VIEW_BACKGROUND), max(1.0, radius / 6)))
    painter.setBrush(theme.verdict_colour(verdict))
    painter.drawEllipse(centre, radius, radius)
    painter.setPen(QColor(theme.VERDICT_TEXT_COLOURS[verdict]))
    painter.setFont(font(max(8, round(radius * 1.25)), QFont.Weight.Black))
    box = QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius)
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, theme.VERDICT_GLYPHS[verdict])
    painter.restore()


def overlay_image(part: InspectedPart, size: tuple[int, int], heat: bool) -> QImage:
    """The part's photograph at ``size`` device pixels, its heatmap blended when ``heat``; a
    malformed image gives a black one (and a log line), never an error."""
    assert part.image is not None
    try:
        rgb = make_overlay(
            part.image, part.heatmap if heat else None, size=size, score=part.decision.heat_scale
        )
    except Exception:  # noqa: BLE001 - a malformed image must not take the window down
        log.exception("could not draw part %s", part.decision.part_id)
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
    return rgb_to_qimage(rgb)


def _blank(width: int, height: int, ratio: float) -> QImage:
    image = QImage(max(1, round(width * ratio)), max(1, round(height * ratio)), QImage.Format.Format_RGB32)
    image.setDevicePixelRatio(ratio)
    return image


def picture_rect(part: InspectedPart, width: int, height: int) -> QRectF:
    """Where the part's picture goes in a view of ``width`` x ``height`` (logical pixels)."""
    assert part.image is not None
    image_h, image_w = part.image.shape[:2]
    box_w, box_h = max(1, width - 2 * VIEW_MARGIN_PX), max(1, height - 2 * VIEW_MARGIN_PX)
    fitted_w, fitted_h = fit_size(image_w, image_h, box_w, box_h)
    left = VIEW_MARGIN_PX + (box_w - fitted_w) // 2
    top = VIEW_MARGIN_PX + (box_h - fitted_h) // 2
    return QRectF(left, top, fitted_w, fitted_h)


def render_view(
    part: InspectedPart, width: int, height: int, ratio: float, *, heat: bool, legend: bool
) -> tuple[QImage, str | None]:
    """The large view's picture of ``part`` (which has an image) at the view's size: background,
    the fitted photograph with its heatmap, the verdict frame and badge, and the legend.

    Returns the picture and the legend's caption (None when no legend was drawn).
    """
    canvas = _blank(width, height, ratio)
    canvas.fill(QColor(theme.VIEW_BACKGROUND))
    target = picture_rect(part, width, height)
    pixel_size = (max(1, round(target.width() * ratio)), max(1, round(target.height() * ratio)))
    picture = overlay_image(part, pixel_size, heat and part.heatmap is not None)
    verdict = part.decision.verdict
    painter = QPainter(canvas)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.drawImage(target, picture)
        painter.setPen(verdict_pen(verdict, FRAME_PX))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        half = FRAME_PX / 2
        painter.drawRect(target.adjusted(-half, -half, half, half))
        radius = max(12.0, min(26.0, min(target.width(), target.height()) / 14))
        draw_verdict_badge(
            painter, QPointF(target.right() - radius - 8, target.top() + radius + 8), radius, verdict
        )
        caption = None
        if heat and legend and part.heatmap is not None:
            caption = _draw_legend(painter, target, anomaly=part.decision.shows_anomaly_map)
    finally:
        painter.end()
    return canvas, caption


def _draw_legend(painter: QPainter, image_rect: QRectF, *, anomaly: bool) -> str | None:
    """The colour ramp and what it means, in the image's lower right corner.

    The heat is on the absolute scale (heat x score): the same colour means the same on every
    part, so the legend can name its ends. Returns its caption (None: no room for it).
    """
    width, height = 190, 12
    if image_rect.width() < width + 60 or image_rect.height() < 160:
        return None
    left = image_rect.right() - width - 22
    top = image_rect.bottom() - height - 30
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(10, 11, 13, 215))
    painter.drawRoundedRect(QRectF(left - 12, top - 28, width + 24, height + 56), 6, 6)
    painter.drawImage(QRectF(left, top, width, height), heat_legend_image(width, 1))
    painter.setPen(QColor(theme.TEXT))
    painter.setFont(font(13, QFont.Weight.Bold))
    title = QRectF(left, top - 24, width, 20)
    # The good-only model's map says where the part is unlike good parts, not "defect".
    caption, low, high = (
        ("UNLIKE GOOD PARTS", "typical", "2x limit") if anomaly else ("DEFECT EVIDENCE", "none", "certain")
    )
    painter.drawText(title, Qt.AlignmentFlag.AlignCenter, caption)
    painter.setFont(font(12, QFont.Weight.Bold))
    below = QRectF(left, top + height + 2, width, 18)
    painter.drawText(below, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, low)
    painter.drawText(below, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, high)
    return caption


TILE_W, TILE_H, TILE_IMAGE_PX = 88, 114, 72  # a history thumbnail (logical pixels)


def render_tile(part: InspectedPart, ratio: float) -> QImage:
    """A history thumbnail of ``part``: its picture with the heatmap, a border in its verdict's
    colour and line style, the verdict badge and the score (transparent around the rounded tile)."""
    tile = QImage(round(TILE_W * ratio), round(TILE_H * ratio), QImage.Format.Format_ARGB32_Premultiplied)
    tile.setDevicePixelRatio(ratio)
    tile.fill(Qt.GlobalColor.transparent)
    painter = QPainter(tile)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        outer = QRectF(0, 0, TILE_W, TILE_H).adjusted(2, 2, -2, -2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.PANEL_RAISED))
        painter.drawRoundedRect(outer, 8, 8)
        image_box = QRectF(outer.left() + 6, outer.top() + 6, outer.width() - 12, TILE_IMAGE_PX)
        painter.fillRect(image_box, QColor(theme.VIEW_BACKGROUND))
        if part.image is not None:
            image_h, image_w = part.image.shape[:2]
            w, h = fit_size(image_w, image_h, TILE_IMAGE_PX, TILE_IMAGE_PX)
            picture = overlay_image(part, (max(1, round(w * ratio)), max(1, round(h * ratio))), True)
            target = QRectF(image_box.center().x() - w / 2, image_box.center().y() - h / 2, w, h)
            painter.drawImage(target, picture)
        else:
            painter.setPen(QColor(theme.TEXT_DIM))
            painter.setFont(font(10, QFont.Weight.Bold))
            painter.drawText(image_box, Qt.AlignmentFlag.AlignCenter, "NO\nIMAGE")
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(verdict_pen(part.decision.verdict, 4))
        painter.drawRoundedRect(outer.adjusted(2, 2, -2, -2), 7, 7)
        draw_verdict_badge(painter, QPointF(outer.right() - 14, outer.top() + 14), 10, part.decision.verdict)
        score = part.decision.score
        painter.setPen(QColor(theme.TEXT))
        painter.setFont(font(15, QFont.Weight.Bold, mono=True))
        caption = QRectF(
            outer.left(), image_box.bottom() + 2, outer.width(), outer.bottom() - image_box.bottom() - 6
        )
        painter.drawText(caption, Qt.AlignmentFlag.AlignCenter, "—" if score is None else f"{score:.3f}")
    finally:
        painter.end()
    return tile
