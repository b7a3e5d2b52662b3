"""The live screen on the real station: a real hot folder, the tiny model, a SQLite log.

The source goes offline (folder deleted) and the feed stops: the window says so within 3 s and
recovers; the alarms are acknowledged with the key and recorded in the log under the user's
name; after a restart the counters are the log's shift counts, the shift report's numbers.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import cv2
from gui_fakes import FAST_WORKER
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from core.station.config import SourceOptions, StationConfig
from core.station.runtime import build_runtime
from core.storage import VisualLog
from core.storage.alarms import AlarmEvent
from core.synth.parts import part_image
from inspector_gui import theme
from inspector_gui.main_window import StationWindow
from inspector_gui.worker import WorkerController

SETTINGS = dataclasses.replace(FAST_WORKER, expected_part_interval_s=1.5, disk_floor_mb=0, bad_run_length=0)


def _config(tmp_path: Path, tiny_model: Path) -> StationConfig:
    return StationConfig(
        source=f"hotfolder:{tmp_path / 'inbox'}",
        model=tiny_model,
        db_url=f"sqlite:///{tmp_path / 'log.sqlite'}",
        media_root=tmp_path / "media",
        station_name="line-7",
        threads=1,
        status_poll_s=0.1,
        source_options=SourceOptions(settle_s=0.1, scan_interval_s=0.1),
    )


def _open(qtbot, config: StationConfig, **options) -> StationWindow:
    controller = WorkerController(lambda: build_runtime(config), settings=SETTINGS)
    window = StationWindow(controller, shift_refresh_s=0.2, **options)
    qtbot.addWidget(window)
    window.show()
    controller.start()
    return window


def _feed(inbox: Path, first: int, count: int) -> None:
    for index in range(first, first + count):
        image, _ = part_image(9, index, defective=bool(index % 2), size=96)
        cv2.imwrite(str(inbox / f"part_{index:03d}.png"), image)


def _wait_state(qtbot, window: StationWindow, words: str, limit_s: float) -> float:
    started = time.monotonic()
    qtbot.waitUntil(lambda: window.station_state[1].startswith(words), timeout=round(limit_s * 1000))
    return time.monotonic() - started


def test_offline_and_stopped_feed_are_shown_within_3_s_acknowledged_recorded_and_counted_after_restart(
    qtbot, tiny_model: Path, tmp_path: Path
):
    config = _config(tmp_path, tiny_model)
    inbox = tmp_path / "inbox"
    window = _open(qtbot, config, user_provider=lambda: "anna")
    try:
        qtbot.waitUntil(lambda: window.station_state == ("ok", "WATCHING"), timeout=60_000)
        _feed(inbox, 0, 3)
        qtbot.waitUntil(lambda: window.counters.total == 3, timeout=30_000)
        assert window.verdict_banner.stale is None

        # The feed stops: "no parts" once the expected interval (1.5 s) has passed, within 3 s.
        _wait_state(qtbot, window, "NO PARTS FOR", 1.5 + 3.0)
        qtbot.waitUntil(lambda: window.verdict_banner.stale is not None, timeout=1000)
        assert window.verdict_banner.stale.startswith("last part ")
        assert window.verdict_banner.colour() == QColor(theme.WAITING)  # greyed, not a verdict
        assert window.alarm_text.split("\n")[0].endswith("No parts are arriving")

        # The folder is deleted: offline within 3 s; back when it is back.
        shutil.rmtree(inbox)
        assert _wait_state(qtbot, window, "SOURCE OFFLINE", 3.0) < 3.0
        qtbot.waitUntil(lambda: window.live_button.text() == "⚠  OFFLINE", timeout=1000)  # next repaint
        inbox.mkdir()
        _wait_state(qtbot, window, "WATCHING", 3.0)
        _feed(inbox, 3, 1)
        qtbot.waitUntil(lambda: window.counters.total == 4, timeout=30_000)
        qtbot.waitUntil(lambda: window.verdict_banner.stale is None, timeout=1000)

        # The alarms wait for the operator: acknowledged with the key, recorded with the name.
        assert window.alarms_waiting >= 2
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=3000)
        while window.alarms_waiting:
            qtbot.keyClick(window, Qt.Key.Key_A)
        assert not window.alarm_bar.isVisible()
        qtbot.waitUntil(
            lambda: window.last_acknowledgement is not None and window.last_acknowledgement.recorded,
            timeout=3000,
        )
    finally:
        window.close()

    with VisualLog(config.db_url, media_root=config.media_root, station="line-7") as log:
        rows = log.alarms()
    raised = {r.kind for r in rows if r.event is AlarmEvent.RAISED}
    acknowledged = {(r.kind, r.user) for r in rows if r.event is AlarmEvent.ACKNOWLEDGED}
    assert {"no_parts", "source"} <= raised
    assert {("no_parts", "anna"), ("source", "anna")} <= acknowledged

    # A restart: the counters are the shift's, from the log, not this session's zero.
    again = _open(qtbot, config)
    try:
        qtbot.waitUntil(lambda: again.shift_counts is not None, timeout=60_000)
        counts = again.shift_counts
        assert again.counters.total == 0 and counts.total == 4
        from core.reports import DEFAULT_PLAN, ShiftPlan, write_shift_report

        with VisualLog(config.db_url, media_root=config.media_root, station="line-7") as log:
            shift = ShiftPlan.parse(DEFAULT_PLAN).shift_at(log.now())
            report = write_shift_report(log, shift, tmp_path / "reports", verify=False)
        summary = report.summary
        assert (counts.good, counts.bad, counts.not_inspected) == (
            int(summary["good"]),
            int(summary["bad"]),
            int(summary["not_inspected"]),
        )
        qtbot.waitUntil(
            lambda: again.counter_tiles["inspected"].value() == str(counts.good + counts.bad), timeout=2000
        )
        assert again.counters_caption.text().startswith(f"SHIFT  {shift.name.upper()}")
    finally:
        again.close()
