"""Style of the supervisor's review pages (history, detail, shift export), on the station's dark theme.

The station's style sheet (``theme.STYLE_SHEET``) styles the live screen's own widgets; tables,
lists and entry fields are left to the platform there, which paints them light with the theme's
light text. These rules give them the same dark panels, and a selection that reads at a glance.
"""

from __future__ import annotations

from . import theme

REVIEW_STYLE = f"""
QTableView, QListWidget, QLineEdit, QComboBox, QDoubleSpinBox, QDateTimeEdit, QGraphicsView {{
    background: {theme.PANEL};
    alternate-background-color: {theme.PANEL_RAISED};
    color: {theme.TEXT};
    border: 1px solid {theme.BORDER};
    border-radius: 4px;
    selection-background-color: {theme.ACCENT};
    selection-color: #0a0b0d;
    gridline-color: {theme.BORDER};
}}
QLineEdit, QComboBox, QDoubleSpinBox, QDateTimeEdit {{
    padding: 4px 8px;
    min-height: 26px;
}}
QComboBox QAbstractItemView {{
    background: {theme.PANEL_RAISED};
    color: {theme.TEXT};
    selection-background-color: {theme.ACCENT};
    selection-color: #0a0b0d;
}}
QHeaderView::section {{
    background: {theme.PANEL_RAISED};
    color: {theme.TEXT_MUTED};
    border: none;
    border-right: 1px solid {theme.BORDER};
    border-bottom: 1px solid {theme.BORDER};
    padding: 4px 6px;
    font-weight: 700;
}}
QTableView::item:focus {{
    border: 2px solid {theme.TEXT};
}}
QFrame#panel {{
    background: {theme.PANEL};
    border: 1px solid {theme.BORDER};
    border-radius: 6px;
}}
QProgressBar {{
    background: {theme.PANEL};
    border: 1px solid {theme.BORDER};
    border-radius: 4px;
    color: {theme.TEXT};
    text-align: center;
}}
QProgressBar::chunk {{
    background: {theme.ACCENT};
}}
"""
