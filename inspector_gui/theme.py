"""Colours, fonts and the style sheet of the operator station.

One dark theme: the part and its verdict are the brightest things on screen, everything else is
muted grey. Verdict colours are the same everywhere (banner, score bar, history borders,
counters) so an operator learns them once.
"""

from __future__ import annotations

import math
import re

from PySide6.QtGui import QColor

from core.common.types import Verdict

BACKGROUND = "#121418"
PANEL = "#1a1d23"
PANEL_RAISED = "#22262e"
BORDER = "#2c313b"
VIEW_BACKGROUND = "#0a0b0d"
TEXT = "#e8ebf0"
TEXT_MUTED = "#8a93a3"
TEXT_DIM = "#5d6573"
ACCENT = "#4c9aff"

GOOD = "#1f9d55"
BAD = "#d63c3c"
NOT_INSPECTED = "#f0a500"
WAITING = "#39404c"
ALARM = "#b3261e"
LIVE_BACKGROUND = "#173524"  # the LIVE pill and button: green only while the news is current
LIVE_TEXT = "#7fe0a6"

VERDICT_COLOURS: dict[Verdict, str] = {
    Verdict.GOOD: GOOD,
    Verdict.BAD: BAD,
    Verdict.NOT_INSPECTED: NOT_INSPECTED,
}

# Text on the banner: white reads best on green and red, near-black on amber.
VERDICT_TEXT_COLOURS: dict[Verdict, str] = {
    Verdict.GOOD: "#ffffff",
    Verdict.BAD: "#ffffff",
    Verdict.NOT_INSPECTED: "#1a1400",
}

VERDICT_LABELS: dict[Verdict, str] = {
    Verdict.GOOD: "GOOD",
    Verdict.BAD: "BAD",
    Verdict.NOT_INSPECTED: "NOT INSPECTED",
}


# The verdict as a shape as well as a colour (thumbnails, the frame, the banner).
VERDICT_GLYPHS: dict[Verdict, str] = {
    Verdict.GOOD: "✓",
    Verdict.BAD: "✗",
    Verdict.NOT_INSPECTED: "?",
}


def verdict_colour(verdict: Verdict | None) -> QColor:
    return QColor(VERDICT_COLOURS.get(verdict, WAITING) if verdict is not None else WAITING)


FONT_FAMILY = '"Inter", "Segoe UI", "Noto Sans", "DejaVu Sans", sans-serif'
MONO_FAMILY = '"JetBrains Mono", "Cascadia Mono", "DejaVu Sans Mono", monospace'

STYLE_SHEET = f"""
QMainWindow, QDialog, QWidget#central {{
    background: {BACKGROUND};
}}
QWidget {{
    color: {TEXT};
    font-family: {FONT_FAMILY};
    font-size: 15px;
}}
QToolTip {{
    background: {PANEL_RAISED};
    color: {TEXT};
    border: 1px solid {BORDER};
    padding: 4px 6px;
}}

/* header */
QFrame#header {{
    background: {PANEL};
    border-bottom: 1px solid {BORDER};
}}
QLabel#brand {{
    color: {ACCENT};
    font-size: 15px;
    font-weight: 800;
    letter-spacing: 3px;
}}
QLabel#stationName {{
    font-size: 22px;
    font-weight: 700;
}}
QLabel#headerMuted {{
    color: {TEXT_MUTED};
    font-size: 15px;
}}
QLabel#clock {{
    font-family: {MONO_FAMILY};
    font-size: 22px;
    color: {TEXT};
}}

/* the station's state in the header: ok green, warn amber, alarm red; words say it too */
QLabel#statePill {{
    font-size: 17px;
    font-weight: 800;
    letter-spacing: 1px;
    padding: 4px 14px;
    border-radius: 14px;
}}
QLabel#statePill[level="ok"] {{
    background: {LIVE_BACKGROUND};
    color: {LIVE_TEXT};
}}
QLabel#statePill[level="warn"] {{
    background: {NOT_INSPECTED};
    color: #1a1400;
}}
QLabel#statePill[level="alarm"] {{
    background: {ALARM};
    color: #ffffff;
}}

/* alarm bar: plain words and the fix, acknowledged by the operator */
QFrame#alarmBar {{
    background: {ALARM};
}}
QFrame#alarmBar[over="true"] {{
    background: #6b2a25;
}}
QLabel#alarm {{
    background: transparent;
    color: #ffffff;
    font-size: 18px;
    font-weight: 700;
}}
QLabel#alarmMore {{
    color: #ffd9d6;
    font-size: 15px;
    font-weight: 700;
}}
QPushButton#ack {{
    background: #ffffff;
    color: {ALARM};
    border: 2px solid #ffffff;
    font-size: 16px;
    font-weight: 800;
    padding: 8px 16px;
}}

/* the last bad part, held beside the live one */
QFrame#heldPanel {{
    background: {PANEL_RAISED};
    border: 3px dashed {BAD};
    border-radius: 10px;
}}
QLabel#heldCaption {{
    color: {TEXT};
    font-size: 15px;
    font-weight: 800;
    letter-spacing: 1px;
}}
QLabel#heldInfo {{
    color: {TEXT_MUTED};
    font-family: {MONO_FAMILY};
    font-size: 14px;
}}
QPushButton#heldAck {{
    background: {BAD};
    color: #ffffff;
    border-color: {BAD};
    font-size: 16px;
}}
QLabel#sessionLine {{
    color: {TEXT_MUTED};
    font-size: 14px;
}}

/* visible keyboard focus everywhere */
QPushButton:focus, QCheckBox:focus {{
    outline: none;
    border: 3px solid {ACCENT};
}}

/* panels */
QFrame#panel {{
    background: {PANEL};
    border: 1px solid {BORDER};
    border-radius: 10px;
}}
QLabel#caption {{
    color: {TEXT_MUTED};
    font-size: 14px;
    font-weight: 700;
    letter-spacing: 2px;
}}
QLabel#scoreValue {{
    font-family: {MONO_FAMILY};
    font-size: 34px;
    font-weight: 700;
}}
QLabel#thresholdValue {{
    font-family: {MONO_FAMILY};
    color: {TEXT_MUTED};
    font-size: 18px;
}}
QLabel#detailKey {{
    color: {TEXT_MUTED};
    font-size: 14px;
    font-weight: 700;
    letter-spacing: 1px;
}}
QLabel#detailValue {{
    font-size: 15px;
}}
QLabel#detailMono {{
    font-family: {MONO_FAMILY};
    font-size: 14px;
}}

/* counters */
QFrame#tile {{
    background: {PANEL_RAISED};
    border: 1px solid {BORDER};
    border-radius: 8px;
}}
QLabel#tileCaption {{
    color: {TEXT_MUTED};
    font-size: 13px;
    font-weight: 700;
    letter-spacing: 1px;
}}
QLabel#tileValue {{
    font-family: {MONO_FAMILY};
    font-size: 26px;
    font-weight: 700;
}}

/* heatmap toggle and live button */
QCheckBox {{
    color: {TEXT};
    font-size: 15px;
    font-weight: 600;
    spacing: 10px;
}}
QCheckBox::indicator {{
    width: 38px;
    height: 20px;
    border-radius: 10px;
    background: {WAITING};
    border: 1px solid {BORDER};
}}
QCheckBox::indicator:checked {{
    background: {ACCENT};
}}
QPushButton {{
    background: {PANEL_RAISED};
    color: {TEXT};
    border: 1px solid {BORDER};
    border-radius: 8px;
    padding: 8px 18px;
    font-size: 15px;
    font-weight: 700;
}}
QPushButton:hover {{
    border-color: {ACCENT};
}}
QPushButton#live[live="true"] {{
    background: {LIVE_BACKGROUND};
    color: {LIVE_TEXT};
    border-color: {GOOD};
}}
QPushButton#live[live="alarm"] {{
    background: {ALARM};
    color: #ffffff;
    border-color: {ALARM};
}}
QPushButton#live[live="false"] {{
    background: {NOT_INSPECTED};
    color: #1a1400;
    border-color: {NOT_INSPECTED};
}}
QPushButton#nav {{
    padding: 4px 14px;
    font-size: 14px;
    border-radius: 6px;
}}
QPushButton#nav:checked {{
    background: {ACCENT};
    color: #ffffff;
    border-color: {ACCENT};
}}

/* status bar */
QStatusBar {{
    background: {PANEL};
    border-top: 1px solid {BORDER};
    color: {TEXT_MUTED};
}}
QStatusBar::item {{
    border: none;
}}
QStatusBar QLabel {{
    color: {TEXT_MUTED};
    font-size: 14px;
    padding: 2px 10px;
}}
"""


def scaled_style_sheet(scale: float) -> str:
    """The style sheet with every font size times ``scale`` (a large window reads from further)."""
    if scale == 1.0:
        return STYLE_SHEET
    return re.sub(r"font-size: (\d+)px", lambda m: f"font-size: {round(int(m[1]) * scale)}px", STYLE_SHEET)


def font_scale(width: int, height: int) -> float:
    """1.0 up to 1440 x 900, growing with the window to 2.0 (4K at 100 %), in steps of 1/8."""
    scale = min(2.0, max(1.0, min(width / 1440, height / 900)))
    return math.floor(scale * 8) / 8
