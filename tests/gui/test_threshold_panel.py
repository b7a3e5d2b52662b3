"""The threshold panel on the real station window: the what-if is what SQL says, applying needs a
supervisor (core refuses an operator and records it), rollback, and the running hot-folder
station judges its next part by the new value."""

from __future__ import annotations

from pathlib import Path

import cv2
from known_truth import PASSWORDS, STATION, make_known_log
from PySide6.QtCore import Qt
from sqlalchemy import create_engine, text

from core.storage import VisualLog
from inspector_gui.main_window import StationWindow
from inspector_gui.workspace import install_workspace

_SQL = """
SELECT COALESCE((SELECT r.verdict FROM reviews r WHERE r.part_id = d.part_id ORDER BY r.seq DESC LIMIT 1),
                'unreviewed') AS truth,
       SUM(CASE WHEN d.score < :cur AND d.score >= :new THEN 1 ELSE 0 END) AS good_to_bad,
       SUM(CASE WHEN d.score >= :cur AND d.score < :new THEN 1 ELSE 0 END) AS bad_to_good
FROM decisions d WHERE d.score IS NOT NULL GROUP BY truth
"""


def _sql(url: str, current: float, proposed: float) -> dict[str, tuple[int, int]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(_SQL), {"cur": current, "new": proposed}).all()
    engine.dispose()
    return {truth: (int(g), int(b)) for truth, g, b in rows}


def _what_if_of(qtbot, page, value: float):  # type: ignore[no-untyped-def]
    page.set_proposed(value)
    qtbot.waitUntil(lambda: page.answer is not None and page.answer.request.proposed == value, timeout=20_000)
    return page.answer.result


def test_what_if_apply_rollback_and_an_operator_refused(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    known = make_known_log(tmp_path)
    window = StationWindow()
    qtbot.addWidget(window)
    window.resize(1440, 900)
    window.show()
    workspace = install_workspace(
        window, known.url, media_root=known.media_root, station=STATION, history=False
    )
    page = workspace.threshold_page
    window.show_page(page)
    qtbot.waitUntil(lambda: page.current == 0.5, timeout=10_000)
    assert page.current_label.text() == "threshold in force: 0.500"
    assert "set by system" in page.set_by_label.text()

    # Nobody logged in: the what-if is there to see, applying is not.
    result = _what_if_of(qtbot, page, 0.58)
    sql = _sql(known.url, 0.5, 0.58)
    assert {t: (result.good_to_bad[t], result.bad_to_good[t]) for t in sql} == sql
    assert f"<b>{result.flips}</b> of {result.inspected} inspected parts" in page.figures_label.text()
    assert page.flips_list.count() == result.flips > 0
    assert not page.apply_button.isEnabled()

    workspace.session.log_in("sara", PASSWORDS["sara"])
    page.reason_edit.setText("too many false rejects on the new batch")
    qtbot.waitUntil(page.apply_button.isEnabled, timeout=5000)
    with qtbot.waitSignal(page.applied, timeout=5000):
        qtbot.mouseClick(page.apply_button, Qt.MouseButton.LeftButton)
    assert page.current_label.text() == "threshold in force: 0.580"

    # A value past a validation defect (0.62): a warning to tick, not a silent acceptance.
    _what_if_of(qtbot, page, 0.7)
    assert page.warning_label.isVisible() and "misses 1 defect(s)" in page.warning_label.text()
    page.reason_edit.setText("try")
    assert not page.apply_button.isEnabled() and not page.apply()
    page.reason_edit.clear()

    # One click back to the first value (0.5): a recorded change of its own.
    rollback = page.history_table.cellWidget(1, 4)
    assert rollback.text() == "Roll back to 0.500" and rollback.isEnabled()
    with qtbot.waitSignal(page.applied, timeout=5000):
        qtbot.mouseClick(rollback, Qt.MouseButton.LeftButton)
    assert page.current == 0.5

    # An operator: the button stays off, and core refuses the call anyway, and records it.
    workspace.session.log_out()
    workspace.session.log_in("otto", PASSWORDS["otto"])
    _what_if_of(qtbot, page, 0.55)
    page.reason_edit.setText("an operator tries")
    assert not page.apply_button.isEnabled()
    assert not page.apply()
    assert page.status.startswith("Otto may not change a threshold")
    window.close()

    with VisualLog(known.url, media_root=known.media_root, station=STATION) as log:
        changes = log.threshold_changes()
        denied = [(e.user, e.action) for e in log.access.events(limit=None) if e.event == "denied"]
    assert [(c.user, c.old, c.new) for c in changes] == [
        ("system", None, 0.5),
        ("sara", 0.5, 0.58),
        ("sara", 0.58, 0.5),
    ]
    assert changes[1].reason == "too many false rejects on the new batch"
    assert changes[1].evidence is not None and changes[1].evidence["flips"] == result.flips
    assert changes[2].evidence == {"rollback_to": 1}
    assert denied == [("otto", "change a threshold")]


def test_the_running_station_judges_its_next_part_by_the_applied_threshold(
    qtbot,  # type: ignore[no-untyped-def]
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    from gui_fakes import FAST_WORKER

    from core.station.config import SourceOptions, StationConfig
    from core.station.runtime import build_runtime
    from core.synth.parts import part_image
    from inspector_gui.worker import WorkerController

    inbox, url = tmp_path / "inbox", f"sqlite:///{tmp_path / 'log.sqlite'}"
    inbox.mkdir()
    with VisualLog(url, media_root=tmp_path / "media", station=STATION) as log:
        log.add_user("sara", role="admin", password=PASSWORDS["sara"])
    config = StationConfig(
        source=f"hotfolder:{inbox}",
        model=tiny_model,
        db_url=url,
        media_root=tmp_path / "media",
        station_name=STATION,
        threads=1,
        source_options=SourceOptions(settle_s=0.1, scan_interval_s=0.1),
    )
    controller = WorkerController(lambda: build_runtime(config), settings=FAST_WORKER)
    window = StationWindow(controller)
    qtbot.addWidget(window)
    window.show()
    workspace = install_workspace(window, url, media_root=tmp_path / "media", station=STATION, history=False)
    controller.start()
    try:
        cv2.imwrite(str(inbox / "first.png"), part_image(1, 0, defective=False, size=96)[0])
        qtbot.waitUntil(lambda: window.shown_part is not None, timeout=60_000)
        first = window.shown_part.decision
        page = workspace.threshold_page
        window.show_page(page)
        workspace.session.log_in("sara", PASSWORDS["sara"])
        result = _what_if_of(qtbot, page, 0.97)
        assert result.inspected == 1 and result.current == first.threshold
        page.reason_edit.setText("trial")
        if page.accept_box.isVisible():
            page.accept_box.setChecked(True)
        with qtbot.waitSignal(page.applied, timeout=5000):
            qtbot.mouseClick(page.apply_button, Qt.MouseButton.LeftButton)

        cv2.imwrite(str(inbox / "second.png"), part_image(2, 0, defective=True, size=96)[0])
        qtbot.waitUntil(lambda: window.shown_part.decision.part_id != first.part_id, timeout=30_000)
        assert window.shown_part.decision.threshold == 0.97 and first.threshold != 0.97
        assert window._status_threshold.text() == "threshold  0.970"  # the status bar follows
    finally:
        window.close()
    assert not controller.is_running
