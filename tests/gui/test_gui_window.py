"""The operator station window driven by a real worker thread on a stand-in line."""

import sys
import time

import cv2
import numpy as np
import pytest
from gui_fakes import FAST_WORKER, FakeLine, make_inspected_part
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from core.common.types import Verdict
from inspector_gui import app as app_module
from inspector_gui import theme
from inspector_gui.main_window import REPAINT_INTERVAL_MS, Counters, StationWindow


def test_repaint_rate_is_at_most_15_hz():
    assert REPAINT_INTERVAL_MS >= 1000 / 15


def test_banner_shows_the_newest_verdict(qtbot, open_station):
    parts = [make_inspected_part(0, Verdict.GOOD, 0.1), make_inspected_part(1, Verdict.BAD, 0.912)]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.shown_part is parts[-1], timeout=3000)
    banner = window.verdict_banner
    assert banner.text() == "BAD"
    assert banner.colour() == QColor(theme.BAD)
    assert window.score_label.text() == "0.912"
    assert window.threshold_label.text() == "threshold 0.500"
    assert window.score_bar.score == pytest.approx(0.912)
    assert window.score_bar.threshold == pytest.approx(0.5)
    assert window._detail_values["PART"].text() == parts[-1].decision.part_id
    assert window._detail_values["SOURCE"].full_text().endswith("part_00001.png")
    assert window._detail_values["LATENCY"].text() == "12.5 ms"
    assert window.windowTitle() == "inspector — line-3 / station A"
    assert "#9f2c4e1a" in window._status_model.text()
    assert "0.500" in window._status_threshold.text()


def test_good_and_not_inspected_banners(qtbot, open_station, painted):
    parts = [
        make_inspected_part(0, Verdict.GOOD, 0.042),
        make_inspected_part(1, Verdict.NOT_INSPECTED, reason="image is 0 bytes", with_image=False),
    ]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.counters.total == 2, timeout=3000)
    window.show_part(parts[0])
    assert window.verdict_banner.text() == "GOOD"
    assert window.verdict_banner.colour() == QColor(theme.GOOD)
    window.go_live()
    assert window.shown_part is parts[1]
    assert window.verdict_banner.text() == "NOT INSPECTED"
    assert window.verdict_banner.colour() == QColor(theme.NOT_INSPECTED)
    assert window.verdict_banner.reason() == "image is 0 bytes"
    assert window.score_label.text() == "—"
    # A part without pixels paints its reason, in muted text, on the view's background: no
    # picture, no verdict frame (nothing amber), and not the "waiting" text of an empty view.
    no_image = _pixels(painted(window.part_view))
    background = np.array(QColor(theme.VIEW_BACKGROUND).getRgb()[:3])
    muted = np.array(QColor(theme.TEXT_MUTED).getRgb()[:3])
    text = np.abs(no_image - muted).sum(axis=2) < 60
    assert text.sum() > 200  # the words were drawn
    assert np.abs(no_image - background).sum(axis=2).mean() < 15  # and little else
    amber = np.array(QColor(theme.NOT_INSPECTED).getRgb()[:3])
    pill = np.abs(no_image - amber).sum(axis=2) < 40
    assert pill.sum() == 0  # live: the amber REVIEW pill is not shown
    window.show_part(parts[0])  # a part with a picture paints many more bright pixels
    assert (_pixels(painted(window.part_view)).sum(axis=2) > 300).sum() > 10 * (
        no_image.sum(axis=2) > 300
    ).sum()


def _pixels(pixmap) -> np.ndarray:
    """A painted widget (see the ``painted`` fixture): an H x W x 3 int array (RGB)."""
    image = pixmap.toImage().convertToFormat(pixmap.toImage().Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return array[:, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)


def _near(pixels: np.ndarray, colour: str, tolerance: int = 40) -> int:
    rgb = np.array(QColor(colour).getRgb()[:3])
    return int((np.abs(pixels - rgb).sum(axis=2) < tolerance).sum())


def test_counters_count_every_part_of_a_burst_faster_than_the_repaint(qtbot, open_station):
    verdicts = [Verdict.GOOD] * 30 + [Verdict.BAD] * 15 + [Verdict.NOT_INSPECTED] * 5
    parts = [make_inspected_part(i, v, size=(160, 120)) for i, v in enumerate(verdicts)]
    parts = [parts[i] for i in np.random.default_rng(3).permutation(len(parts))]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.counters.total == 50, timeout=5000)
    # The timer draws the last one (after a bad part's minimum time on the banner).
    qtbot.waitUntil(lambda: window.shown_part is parts[-1], timeout=3000)
    counters = window.counters
    assert (counters.good, counters.bad, counters.not_inspected) == (30, 15, 5)
    assert counters.inspected == 45
    assert counters.yield_pct == pytest.approx(100 * 30 / 45)
    # Only the newest was painted, not all 50.
    assert window.shown_part is parts[-1]
    assert 1 <= window.render_count <= 10
    tiles = window.counter_tiles
    assert tiles["inspected"].value() == "45"
    assert tiles["good"].value() == "30"
    assert tiles["bad"].value() == "15"
    assert tiles["not_inspected"].value() == "5"
    assert tiles["yield"].value() == "66.7%"
    assert int(tiles["rate"].value()) > 0
    # The history keeps the last 12, newest first.
    assert [p.decision.part_id for p in window.history] == [p.decision.part_id for p in parts[::-1][:12]]


def test_worker_exception_shows_an_alarm_and_parts_keep_coming(qtbot, open_station):
    parts = [make_inspected_part(i, Verdict.GOOD) for i in range(4)]
    line = FakeLine(parts, fail_on_calls={3})
    window = open_station(line, worker_options={"backoff_first_s": 1.0})
    qtbot.waitUntil(lambda: window.alarm_text is not None, timeout=3000)
    # Plain words and the fix on screen; the exception's text only in the details (tooltip, log).
    assert "The station stopped inspecting and is restarting" in window.alarm_text
    assert "Error" not in window.alarm_text
    assert "simulated inference failure on call 3" in window.alarm_detail
    assert window.alarm_bar.isVisible()
    assert "simulated inference failure" in window.alarm_label.toolTip()
    assert "FAILED" in window._status_worker.text()
    assert window.station_state == ("alarm", "RESTARTING")
    assert window.counters.total == 2
    # Not a green LIVE while the station restarts (drawn by the next repaint).
    qtbot.waitUntil(lambda: window.live_button.text() == "⚠  ALARM", timeout=1000)
    # After the rebuild the rest of the parts arrive and the alarm clears.
    qtbot.waitUntil(lambda: window.counters.total == 4, timeout=3000)
    qtbot.waitUntil(lambda: window.live_button.text() == "●  LIVE", timeout=1000)
    assert line.builds == 2
    # The alarm is over but waits for the operator's acknowledgement, marked as over.
    assert "over since" in window.alarm_text and window.alarm_bar.isVisible()
    qtbot.mouseClick(window.ack_button, Qt.MouseButton.LeftButton)
    assert window.alarm_text is None and not window.alarm_bar.isVisible()


def test_the_window_stays_responsive_and_closes_promptly_during_a_long_backoff(qtbot, open_station):
    line = FakeLine(factory_failures=1000)  # the station cannot start: 30 s between tries
    window = open_station(line, worker_options={"backoff_first_s": 30.0, "backoff_max_s": 30.0})
    qtbot.waitUntil(lambda: window.alarm_text is not None, timeout=3000)
    assert "Station could not start: OSError: camera not found" in window.alarm_detail
    assert "retrying in 30.0 s" in window.alarm_detail
    # The GUI thread is free during the back-off: its timers keep firing on time.
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    qtbot.wait(400)
    timer.stop()
    assert len(ticks) >= 10 and max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.2
    renders = window.render_count
    window._on_worker_inspected(make_inspected_part(0, Verdict.BAD))
    qtbot.waitUntil(lambda: window.render_count > renders, timeout=1000)  # repaints go on
    # Closing it stops the worker in the middle of the 30 s wait, at once.
    started = time.monotonic()
    window.close()
    latency_s = time.monotonic() - started
    assert latency_s < 1.0, f"closing took {latency_s:.2f} s during a 30 s back-off"
    assert not window.controller.is_running and line.builds == 1


def test_source_offline_is_shown_and_live_is_not_green(qtbot, open_station, painted):
    line = FakeLine([make_inspected_part(0, Verdict.GOOD)])
    window = open_station(line)
    qtbot.waitUntil(lambda: window.shown_part is not None and window.source_status is not None, timeout=3000)
    assert window.live_button.text() == "●  LIVE" and window.alarm_text is None
    assert _near(_pixels(painted(window.part_view)), theme.LIVE_TEXT) > 20  # the green LIVE pill
    line.problem, line.online = "inbox /srv/inbox unreachable: No such file or directory", False
    qtbot.waitUntil(lambda: window.alarm_text is not None, timeout=3000)
    qtbot.wait(REPAINT_INTERVAL_MS * 2)
    assert "source OFFLINE: inbox /srv/inbox unreachable" in window.alarm_detail
    assert window.alarm_text.split("\n")[0].endswith("Source offline: no parts can arrive")
    assert window.alarm_bar.isVisible()
    assert window.station_state == ("alarm", "SOURCE OFFLINE · reconnecting")
    # The old verdict is not passed off as current: greyed out, with its age.
    assert window.verdict_banner.stale is not None and window.verdict_banner.stale.startswith("last part ")
    assert window.verdict_banner.colour() == QColor(theme.WAITING)
    assert "OFFLINE: inbox /srv/inbox unreachable" in window._status_source.text()
    assert window._status_worker.text().startswith("source OFFLINE: ")
    assert window.live_button.text() == "⚠  OFFLINE" and window.live_button.property("live") == "alarm"
    assert window.part_view.alarm == "OFFLINE"
    offline = _pixels(painted(window.part_view))
    # No green LIVE pill (a few anti-aliased pixels of the green verdict badge may come close).
    assert _near(offline, theme.LIVE_TEXT) < 20 and _near(offline, theme.LIVE_BACKGROUND, 10) < 20
    assert _near(offline, theme.ALARM) > 200  # the red OFFLINE pill instead
    button = _pixels(painted(window.live_button))
    assert _near(button, theme.ALARM) > button.shape[0] * button.shape[1] // 3
    line.online = True
    qtbot.waitUntil(lambda: window.station_state == ("ok", "WATCHING"), timeout=3000)
    qtbot.wait(REPAINT_INTERVAL_MS * 2)
    assert window.live_button.text() == "●  LIVE" and window.verdict_banner.stale is None
    window.acknowledge_alarm()
    assert window.alarm_text is None and not window.alarm_bar.isVisible()
    assert _near(_pixels(painted(window.part_view)), theme.LIVE_TEXT) > 20


def test_closing_the_window_under_load_stops_the_worker(qtbot, open_station):
    line = FakeLine([make_inspected_part(i, v) for i, v in enumerate(Verdict)], endless=True, delay_s=0.001)
    window = open_station(line)
    controller = window.controller
    stopped = []
    controller.worker.stopped.connect(lambda: stopped.append(True))
    qtbot.waitUntil(lambda: window.counters.total > 30, timeout=3000)
    assert controller.is_running
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 1.0
    assert not controller.worker_thread.isRunning()
    assert not controller.worker.is_running
    assert all(runtime.closed for runtime in line.runtimes)
    qtbot.waitUntil(lambda: stopped == [True], timeout=1000)


def test_quit_after_closes_the_window(qtbot, open_station):
    line = FakeLine([make_inspected_part(i) for i in range(3)], endless=True, delay_s=0.002)
    window = open_station(line, quit_after=5)
    with qtbot.waitSignal(window.closed, timeout=3000):
        pass
    assert not window.isVisible()
    assert window.counters.total >= 5
    assert not window.controller.is_running


def test_clicking_a_history_item_shows_that_part_until_live(qtbot, open_station):
    parts = [make_inspected_part(i, Verdict.BAD if i == 2 else Verdict.GOOD) for i in range(6)]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.counters.total == 6, timeout=3000)
    qtbot.waitUntil(lambda: window.shown_part is parts[-1], timeout=3000)
    qtbot.waitUntil(window.history_strip.pictures_ready, timeout=3000)  # tiles drawn off the GUI thread
    thumbs = window.history_strip.thumbnails()
    assert thumbs[3].part is parts[2]  # newest first
    assert thumbs[3].isVisible()
    qtbot.mouseClick(thumbs[3], Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert window.shown_part is parts[2]
    assert not window.is_live
    assert window.verdict_banner.text() == "BAD"
    assert "GO LIVE" in window.live_button.text()

    # New parts are counted but do not take the view away from the part under review.
    newer = make_inspected_part(6, Verdict.GOOD)
    window._on_worker_inspected(newer)
    qtbot.wait(REPAINT_INTERVAL_MS * 2)
    assert window.shown_part is parts[2]
    assert window.counters.total == 7
    assert window.history[0] is newer

    qtbot.mouseClick(window.live_button, Qt.MouseButton.LeftButton)
    assert window.is_live
    assert window.shown_part is newer
    assert window.verdict_banner.text() == "GOOD"
    assert "LIVE" in window.live_button.text()


def test_heatmap_toggle_shows_the_plain_part(qtbot, painted):
    window = StationWindow()
    qtbot.addWidget(window)
    window.show()
    part = make_inspected_part(0, Verdict.BAD)
    window._on_worker_inspected(part)
    window.render_now()

    def reddish_pixels() -> int:
        rgb = _pixels(painted(window.part_view))
        return int(((rgb[:, :, 0] > 150) & (rgb[:, :, 0] - rgb[:, :, 2] > 80)).sum())

    with_heat = reddish_pixels()
    qtbot.mouseClick(
        window.heatmap_toggle, Qt.MouseButton.LeftButton, pos=QPoint(8, window.heatmap_toggle.height() // 2)
    )
    assert not window.part_view.heatmap_visible
    without_heat = reddish_pixels()
    # The red verdict frame stays; the hot spot on the part goes.
    assert with_heat > without_heat + 200


def test_counters_yield_and_rate():
    counters = Counters(total=10, good=6, bad=2, not_inspected=2, parts_per_min=12.0)
    assert counters.inspected == 8
    assert counters.yield_pct == pytest.approx(75.0)
    assert Counters(total=1, good=0, bad=0, not_inspected=1, parts_per_min=0).yield_pct is None


def test_run_station_quits_after_n_parts_and_saves_a_screenshot(qtbot, qapp, tmp_path):
    line = FakeLine([make_inspected_part(i, v) for i, v in enumerate(Verdict)], endless=True, delay_s=0.005)
    shot = tmp_path / "station.png"
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(lambda: [w.close() for w in QApplication.topLevelWidgets()])
    guard.start(5000)  # if quit_after were broken, end the loop instead of hanging the suite
    try:
        code = app_module.run_station(line.factory, settings=FAST_WORKER, quit_after=4, screenshot=shot)
    finally:
        guard.stop()
    assert code == 0
    # The run left no stale quit request behind: the next event loop still runs its full time.
    started = time.monotonic()
    qtbot.wait(60)
    assert time.monotonic() - started >= 0.05
    assert line.delivered >= 4
    assert all(runtime.closed for runtime in line.runtimes)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 800


def test_offscreen_fallback_without_a_display(monkeypatch, capsys):
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    app_module.ensure_qt_platform()
    import os

    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"
    assert "offscreen" in capsys.readouterr().err

    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("DISPLAY", ":0")
    app_module.ensure_qt_platform()
    assert "QT_QPA_PLATFORM" not in os.environ


def test_an_unexpected_worker_stop_raises_an_alarm(qtbot):
    window = StationWindow()
    qtbot.addWidget(window)
    window.show()
    window._on_worker_stopped()  # as if the worker loop ended while the window is open
    assert window.alarm_bar.isVisible()
    assert "Inspection stopped" in window.alarm_text
    assert window._status_worker.text() == "worker STOPPED"


def test_pages_are_added_after_the_live_screen_and_reached_by_button_and_shortcut(qtbot):
    from PySide6.QtWidgets import QLabel, QPushButton

    window = StationWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.current_page is window.live_page
    nav = [b for b in window.findChildren(QPushButton) if b.objectName() == "nav"]
    assert not any(b.isVisible() for b in nav)  # only the live page: no navigation shown
    page = QLabel("supervisor page")
    window.add_page("Supervisor", page, shortcut="F2")
    buttons = {b.text(): b for b in window.findChildren(QPushButton) if b.objectName() == "nav"}
    assert set(buttons) == {"Live", "Supervisor"} and buttons["Supervisor"].isVisible()
    qtbot.mouseClick(buttons["Supervisor"], Qt.MouseButton.LeftButton)
    assert window.current_page is page and buttons["Supervisor"].isChecked()
    window.show_live()
    assert window.current_page is window.live_page and buttons["Live"].isChecked()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)  # window shortcuts need an active window
    qtbot.keyClick(window, Qt.Key.Key_F2)
    assert window.current_page is page
    qtbot.keyClick(window, Qt.Key.Key_F1)
    assert window.current_page is window.live_page
    with pytest.raises(ValueError):
        window.add_page("Again", page)
    # Two pages on one key would open neither: refused, and the page is not added.
    other = QLabel("another page")
    with pytest.raises(ValueError, match="F2 already opens the Supervisor page"):
        window.add_page("Other", other, shortcut="F2")
    assert window.pages.indexOf(other) == -1
    window.close()
