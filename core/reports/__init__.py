"""Reports over the visual log: per-shift CSV files (and, later, what the GUI shows)."""

from core.reports.shift_report import ShiftReport, safe_cell, write_shift_report
from core.reports.shifts import DEFAULT_PLAN, Shift, ShiftPlan

__all__ = ["DEFAULT_PLAN", "Shift", "ShiftPlan", "ShiftReport", "safe_cell", "write_shift_report"]
