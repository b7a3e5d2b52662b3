"""The live screen's layout and its state words: nothing squashed or off-screen at 1366 x 768 with
an alarm and a held bad part shown; the header's state for each kind of trouble."""

from __future__ import annotations

import pytest
from gui_fakes import FAST_WORKER, make_inspected_part
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QLabel, QPushButton

from core.common.types import Verdict
from core.model.bundle import BundleError
from core.sources.base import SourceStatus
from core.station.events import AlarmKind, AlarmRaised
from inspector_gui import theme
from inspector_gui.live_state import station_state
from inspector_gui.main_window import StationWindow
from inspector_gui.widgets import ElidedLabel
from inspector_gui.worker import WorkerController


@pytest.mark.parametrize("size", [(1366, 720), (1366, 768), (1920, 1080), (3840, 2160)])
def test_nothing_is_cut_or_off_screen_with_an_alarm_and_a_held_part(qtbot, size):
    window = StationWindow()
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    for index, verdict in enumerate([Verdict.BAD, *[Verdict.GOOD] * 11]):
        window._on_worker_inspected(make_inspected_part(index, verdict))
    window._on_worker_alarm_raised(AlarmRaised(kind=AlarmKind.SOURCE, message="source OFFLINE: inbox gone"))
    window.render_now()
    qtbot.wait(50)  # layouts settle
    assert window.width() == size[0] and window.height() == size[1]
    assert window.held_panel.isVisible() and window.alarm_bar.isVisible()
    frame = QRect(0, 0, window.width(), window.height())
    checked = 0
    for widget in window.findChildren(QLabel) + window.findChildren(QPushButton):
        if not widget.isVisibleTo(window) or not widget.text():
            continue
        rect = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
        assert frame.contains(rect), f"{widget.objectName() or widget.text()!r} runs off-screen: {rect}"
        # Squashed below the height its text needs: the text would be cut.
        need = widget.minimumSizeHint().height()
        assert widget.height() >= need - 1, f"{widget.text()!r} is {widget.height()} px high, needs {need}"
        # ... or narrowed below it (word-wrapped labels and the elided source line may be).
        if not (isinstance(widget, ElidedLabel) or (isinstance(widget, QLabel) and widget.wordWrap())):
            need = widget.minimumSizeHint().width()
            assert widget.width() >= need - 1, f"{widget.text()!r} is {widget.width()} px wide, needs {need}"
        checked += 1
    assert checked > 30
    # The side panels do not overlap each other.
    tiles = [t for t in window.counter_tiles.values()]
    rects = [QRect(t.mapTo(window, t.rect().topLeft()), t.size()) for t in tiles]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1 :])
    banner = QRect(
        window.verdict_banner.mapTo(window, window.verdict_banner.rect().topLeft()),
        window.verdict_banner.size(),
    )
    assert not any(banner.intersects(r) for r in rects)
    window.close()


def test_a_missing_model_is_said_in_plain_words(qtbot):
    def factory():
        raise BundleError("/srv/models/line3 is not a model bundle: model.json is missing")

    controller = WorkerController(factory, settings=FAST_WORKER)
    window = StationWindow(controller)
    qtbot.addWidget(window)
    window.show()
    controller.start()
    qtbot.waitUntil(lambda: window.alarm_text is not None, timeout=3000)
    assert window.station_state == ("alarm", "MODEL MISSING")
    assert "The model is missing or damaged" in window.alarm_text
    assert "BundleError" not in window.alarm_text and "BundleError" in window.alarm_detail
    assert window.state_label.text() == "MODEL MISSING"
    window.close()


def _raised(kind: AlarmKind) -> AlarmRaised:
    return AlarmRaised(kind=kind, message=kind.value)


@pytest.mark.parametrize(
    ("active", "status", "expected"),
    [
        ({}, None, ("ok", "WATCHING")),
        ({AlarmKind.NO_PARTS: _raised(AlarmKind.NO_PARTS)}, None, ("warn", "NO PARTS FOR 42 s")),
        ({AlarmKind.DISK: _raised(AlarmKind.DISK)}, None, ("warn", "DISK NEARLY FULL")),
        ({AlarmKind.STORAGE: _raised(AlarmKind.STORAGE)}, None, ("alarm", "DATABASE UNAVAILABLE")),
        ({}, SourceStatus(online=False, message="camera gone"), ("alarm", "SOURCE OFFLINE · reconnecting")),
        ({AlarmKind.STATION: _raised(AlarmKind.STATION)}, None, ("alarm", "RESTARTING")),
        # Worst news first: offline beats a full disk.
        ({AlarmKind.DISK: _raised(AlarmKind.DISK), AlarmKind.SOURCE: _raised(AlarmKind.SOURCE)}, None,
         ("alarm", "SOURCE OFFLINE · reconnecting")),
    ],
)  # fmt: skip
def test_the_header_names_the_worst_state(active, status, expected):
    state = station_state(started=True, stopped=False, active=active, source_status=status, idle_s=42.0)
    assert state == expected
    assert station_state(started=True, stopped=True, active=active, source_status=status, idle_s=1.0) == (
        "alarm",
        "STOPPED",
    )


def test_the_style_sheet_grows_with_the_window():
    assert theme.font_scale(1366, 768) == 1.0
    assert theme.font_scale(1920, 1080) == 1.125
    assert theme.font_scale(3840, 2160) == 2.0
    assert "font-size: 36px" in theme.scaled_style_sheet(2.0)  # the 18 px alarm line


def test_screen_settings_come_from_the_environment_unless_given(qtbot, monkeypatch):
    monkeypatch.setenv("INSPECTOR_GUI_KIOSK", "yes")
    monkeypatch.setenv("INSPECTOR_GUI_ALARM_SOUND", "1")
    monkeypatch.setenv("INSPECTOR_GUI_REVIEW_TIMEOUT_S", "12.5")
    window = StationWindow()
    qtbot.addWidget(window)
    assert window.windowState() & Qt.WindowState.WindowFullScreen
    assert window.alarm_sound is True and window.review_timeout_s == 12.5
    given = StationWindow(kiosk=False, alarm_sound=False, review_timeout_s=5)
    qtbot.addWidget(given)
    assert not given.windowState() & Qt.WindowState.WindowFullScreen
    assert given.alarm_sound is False and given.review_timeout_s == 5
    monkeypatch.setenv("INSPECTOR_GUI_REVIEW_TIMEOUT_S", "soon")
    third = StationWindow()
    qtbot.addWidget(third)
    assert third.review_timeout_s == 30.0  # not a number: the default, with a warning
