"""The window's export of reviewed parts writes what ``inspector export-labelled`` does, on its thread."""

from __future__ import annotations

from pathlib import Path

from history_log import make_known_log
from PySide6.QtCore import Qt

from core.common.types import Verdict
from inspector_gui.labelled_export_dialog import LabelledExportDialog


def test_the_reviewed_parts_are_exported_by_their_newest_review(qtbot, tmp_path: Path) -> None:
    known = make_known_log(tmp_path / "log", parts_per_station=6)
    out = tmp_path / "reviewed"
    dialog = LabelledExportDialog(known.open, ["line-a", "line-b"], out_dir=out)
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.exported, timeout=30_000) as done:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    # The known log's supervisor reviewed every fourth part, to its truth.
    truth = {d.part_id: known.truth[d.part_id] for d in known.decisions[::4]}
    good = sorted(p for p, v in truth.items() if v is Verdict.GOOD)
    bad = sorted(p for p, v in truth.items() if v is Verdict.BAD)
    assert (result.good, result.bad) == (len(good), len(bad))
    assert sorted(p.stem for p in (out / "good").iterdir()) == good
    assert sorted(p.stem for p in (out / "bad").iterdir()) == bad
    assert dialog.opened_url is not None and dialog.opened_url.toLocalFile() == str(out)
    dialog.close()
    assert not dialog._thread.isRunning()


def test_a_folder_that_is_not_empty_is_refused_in_words(qtbot, tmp_path: Path) -> None:
    known = make_known_log(tmp_path / "log", parts_per_station=6)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something.txt").write_text("x")
    dialog = LabelledExportDialog(known.open, ["line-a"], out_dir=out, open_folder=False)
    qtbot.addWidget(dialog)
    # Waiting on the page, not on the worker's signal (emitted on its thread).
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("⚠ Not exported:"), timeout=30_000)
    assert "is not empty" in dialog.status.text()
    assert dialog.export_button.isEnabled() and dialog.opened_url is None
    dialog.close()
