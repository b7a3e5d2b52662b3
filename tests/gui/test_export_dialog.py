"""The shift export dialog writes the same CSV files as ``inspector report`` (core's function)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from history_log import T0, make_known_log
from PySide6.QtCore import QDateTime, Qt

from core.reports.shift_report import write_shift_report
from core.reports.shifts import Shift, ShiftPlan
from inspector_gui.export_dialog import ExportDialog

PLAN = ShiftPlan.parse("06:00=early,14:00=late,22:00=night", "UTC")


def test_a_shift_of_every_station_is_written_like_the_cli(qtbot, tmp_path: Path) -> None:
    known = make_known_log(tmp_path / "log", parts_per_station=6)
    out = tmp_path / "reports"
    dialog = ExportDialog(
        known.open, ["line-a", "line-b"], plan=PLAN, out_dir=out, clock=lambda: T0 + timedelta(hours=9)
    )
    qtbot.addWidget(dialog)
    dialog.show()
    # Now is 15:00: the previous shift (chosen at first) is the early shift, which holds every part.
    early = dialog.chosen_shift()
    assert early.name == "early" and early.start == T0
    assert dialog.chosen_stations() == ["line-a", "line-b"]
    with qtbot.waitSignal(dialog.exported, timeout=30_000) as done:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    written = sorted(Path(p).name for p in done.args[0])
    assert written == [
        "line-a_2025-03-14_early_parts.csv", "line-a_2025-03-14_early_summary.csv",
        "line-b_2025-03-14_early_parts.csv", "line-b_2025-03-14_early_summary.csv",
    ]  # fmt: skip
    assert dialog.progress.value() == dialog.progress.maximum() == 2
    assert dialog.opened_url is not None and dialog.opened_url.toLocalFile() == str(out)
    assert threading.get_ident() not in dialog.worker.thread_ids
    # Byte for byte what the command line's core function writes.
    for station in ("line-a", "line-b"):
        with known.open(station) as log:
            report = write_shift_report(log, early, tmp_path / "cli")
        assert (out / report.parts_csv.name).read_bytes() == report.parts_csv.read_bytes()
        assert (out / report.summary_csv.name).read_bytes() == report.summary_csv.read_bytes()
        rows = report.parts_csv.read_text(encoding="utf-8-sig").splitlines()
        assert len(rows) == 1 + 6  # the header and every part of the station
    dialog.close()


def test_a_range_of_one_station(qtbot, tmp_path: Path) -> None:
    known = make_known_log(tmp_path / "log", parts_per_station=6)
    out = tmp_path / "reports"
    dialog = ExportDialog(known.open, ["line-a", "line-b"], plan=PLAN, out_dir=out, open_folder=False)
    qtbot.addWidget(dialog)
    dialog.range_radio.setChecked(True)
    line_a = [d for d in known.decisions if d.station == "line-a"]
    start = line_a[0].created_at.replace(microsecond=0)
    end = line_a[3].created_at.replace(microsecond=0) + timedelta(seconds=1)  # the first four parts
    dialog.since_edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(start.timestamp())))
    dialog.until_edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(end.timestamp())))
    dialog.station_choice.setCurrentIndex(dialog.station_choice.findData("line-a"))
    shift = dialog.chosen_shift()
    assert isinstance(shift, Shift) and shift.name == "range" and (shift.start, shift.end) == (start, end)
    with qtbot.waitSignal(dialog.exported, timeout=30_000) as done:
        dialog.start_export()
    parts = next(Path(p) for p in done.args[0] if p.endswith("_parts.csv"))
    assert parts.name == "line-a_2025-03-14_range_parts.csv"
    times = [line.split(",")[1] for line in parts.read_text(encoding="utf-8-sig").splitlines()[1:]]
    assert len(times) == 4 and all(start <= datetime.fromisoformat(t).astimezone(UTC) < end for t in times)
    assert dialog.opened_url is None

    # A range that ends before it starts is said, and nothing is written.
    dialog.until_edit.setDateTime(QDateTime.fromSecsSinceEpoch(int((start - timedelta(hours=1)).timestamp())))
    dialog.start_export()
    assert "ends before it starts" in dialog.status.text()
    dialog.close()
