"""The History page in the real station window: history -> detail -> review -> back, export, clean close."""

from __future__ import annotations

from pathlib import Path

from history_log import make_known_log
from PySide6.QtCore import Qt

from core.common.types import Verdict
from inspector_gui.export_dialog import ExportDialog
from inspector_gui.history_page import HistoryPage, install_history_page
from inspector_gui.main_window import StationWindow


def test_the_history_page_in_the_station_window(qtbot, tmp_path: Path) -> None:
    known = make_known_log(tmp_path, parts_per_station=6)
    supervisor = known.actor("anna")
    window = StationWindow(None, title="inspector — test")
    qtbot.addWidget(window)
    page = install_history_page(
        window, known.url, media_root=known.media_root, actor=lambda: supervisor, export_dir=tmp_path / "out"
    )
    assert isinstance(page, HistoryPage)
    window.show()
    with qtbot.waitSignal(page.history.model.page_changed, timeout=10_000):
        window.show_page(page)
    assert page.history.model.rowCount() == len(known.decisions)

    # Enter on the first unreviewed good part opens it; "Truly BAD" records a review; Esc goes back.
    reviewed = {d.part_id for d in known.decisions[::4]}
    row = next(
        r
        for r in range(page.history.model.rowCount())
        if (x := page.history.model.row_at(r)) is not None
        and x.decision.verdict is Verdict.GOOD
        and x.decision.part_id not in reviewed
    )
    part_id = page.history.model.row_at(row).decision.part_id  # type: ignore[union-attr]
    page.history.table.setFocus()
    page.history.table.selectRow(row)
    qtbot.keyClick(page.history.table, Qt.Key.Key_Return)
    assert page.stack.currentWidget() is page.detail
    qtbot.waitUntil(lambda: page.detail.detail is not None and page.detail.detail.decision.part_id == part_id)
    with qtbot.waitSignal(page.history.model.page_changed, timeout=10_000):
        qtbot.mouseClick(page.detail.bad_button, Qt.MouseButton.LeftButton)
    shown = {
        page.history.model.row_at(r).decision.part_id: page.history.model.row_at(r)  # type: ignore[union-attr]
        for r in range(page.history.model.rowCount())
    }
    assert shown[part_id].review_verdict is Verdict.BAD and shown[part_id].decision.verdict is Verdict.GOOD
    qtbot.mouseClick(page.detail.back_button, Qt.MouseButton.LeftButton)
    assert page.stack.currentWidget() is page.history

    # The export button opens the dialog with the log's stations.
    qtbot.waitUntil(lambda: page.history.station_choice.count() == 3)
    qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
    assert isinstance(page.export_dialog, ExportDialog) and page.export_dialog.chosen_stations() == [
        "line-a",
        "line-b",
    ]
    page.export_dialog.close()

    # The reviewed parts as a labelled folder, from the same page.
    qtbot.mouseClick(page.labelled_button, Qt.MouseButton.LeftButton)
    dialog = page.labelled_dialog
    assert dialog is not None
    with qtbot.waitSignal(dialog.exported, timeout=30_000) as done:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    out = tmp_path / "out" / "reviewed-parts"
    labels = {p.stem: p.parent.name for p in out.glob("*/*.png")}
    assert labels[part_id] == "bad"  # the override, not the model's verdict
    assert result.parts == len(labels) and (out / "manifest.json").is_file()
    assert dialog.opened_url is not None and "parts written" in dialog.status.text()
    dialog.close()
    window.close()  # the page's threads stop with the window (the leak check looks)
    assert not page.reader.thread.isRunning()
