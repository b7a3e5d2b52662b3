"""Fixtures for the station window tests: the stand-in line (see gui_fakes) and leak checks."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import dataclasses  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402
from gui_fakes import FAST_WORKER, FakeLine, make_inspected_part  # noqa: E402
from PySide6.QtCore import QThread, QtMsgType, qInstallMessageHandler  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.common.types import InspectedPart, Verdict  # noqa: E402

# Known harmless noise of the offscreen platform plugin.
_IGNORED_QT_MESSAGES = ("propagateSizeHints",)


@pytest.fixture
def make_part() -> Callable[..., InspectedPart]:
    return make_inspected_part


@pytest.fixture
def mixed_parts() -> list[InspectedPart]:
    verdicts = [Verdict.GOOD, Verdict.GOOD, Verdict.BAD, Verdict.GOOD, Verdict.NOT_INSPECTED, Verdict.BAD]
    return [make_inspected_part(i, v) for i, v in enumerate(verdicts)]


@pytest.fixture
def painted(qtbot) -> Callable[..., object]:
    """Paint a widget as it looks once its pictures are composed: a part view's picture is
    composed on the window's composer thread after the first paint asks for it."""

    def paint(widget):
        widget.grab()  # a part view asks for its picture when it paints
        if hasattr(widget, "picture_ready"):
            qtbot.waitUntil(lambda: widget.picture_ready, timeout=3000)
        return widget.grab()

    return paint


@pytest.fixture
def open_station(qtbot):
    """Open a StationWindow on a FakeLine with a started worker; closed again by qtbot."""
    from inspector_gui.main_window import StationWindow
    from inspector_gui.worker import WorkerController

    # Strong references: qtbot only keeps weak ones, and a window must be *closed* (which stops
    # its worker), not merely garbage-collected, for the test to be a fair one.
    windows: list[StationWindow] = []

    def _open(line: FakeLine, worker_options: dict | None = None, **window_options) -> StationWindow:
        settings = dataclasses.replace(FAST_WORKER, **(worker_options or {}))
        controller = WorkerController(line.factory, settings=settings)
        window = StationWindow(controller, **window_options)
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        controller.start()
        return window

    yield _open
    windows.clear()


# -- leak checks (napari style) -------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leaked_threads_or_windows(request, monkeypatch) -> Iterator[None]:
    """Fail a test that leaves a QThread running, a top-level window open or a Qt warning."""
    started: list[weakref.ref[QThread]] = []
    original_start = QThread.start

    def _tracking_start(self: QThread, *args, **kwargs):
        started.append(weakref.ref(self))
        return original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", _tracking_start)
    # pytest-qt's capture of Qt messages exists now and is dropped right after the call phase,
    # so keep a reference; teardown messages are checked by pytest_runtest_teardown below.
    capture = getattr(request.node, "qt_log_capture", None)
    yield
    # pytest-qt has closed the widgets registered with qtbot by now.
    problems: list[str] = []
    for ref in started:
        thread = ref()
        if thread is None:
            continue
        try:
            running = thread.isRunning()
        except RuntimeError:  # the C++ object is already gone: it cannot be running
            continue
        if running:
            problems.append(f"QThread {thread.objectName() or thread!r} still running")
            thread.quit()
            thread.wait(2000)
    app = QApplication.instance()
    if app is not None:
        for widget in QApplication.topLevelWidgets():
            if widget.isVisible() and widget.isWindow():
                problems.append(f"top-level widget left open: {type(widget).__name__}")
                widget.close()
    if capture is not None:
        for record in capture.records:
            if record.matches_level("WARNING") and not any(s in record.message for s in _IGNORED_QT_MESSAGES):
                problems.append(f"Qt {record.type_name}: {record.message}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item):
    """Qt warnings while windows close (after pytest-qt stopped capturing) fail the test too."""
    messages: list[str] = []
    serious = (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)

    def _handler(mode, context, message):
        if mode in serious and not any(s in message for s in _IGNORED_QT_MESSAGES):
            messages.append(f"{mode.name}: {message}")
        if previous is not None:
            previous(mode, context, message)

    previous = qInstallMessageHandler(_handler)
    try:
        return (yield)
    finally:
        qInstallMessageHandler(previous)
        if messages:
            pytest.fail("Qt warnings during teardown: " + "; ".join(messages), pytrace=False)
