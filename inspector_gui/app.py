"""Starting the station window: ``run_station`` and the ``inspector-gui`` console script."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.station.loop import LoopRuntime, LoopSettings

log = logging.getLogger(__name__)


def ensure_qt_platform() -> None:
    """Fall back to the offscreen platform on a Linux box without a display.

    Must run before the QApplication exists; an explicit ``QT_QPA_PLATFORM`` always wins.
    """
    if os.environ.get("QT_QPA_PLATFORM"):
        return
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        print(
            "inspector: no DISPLAY or WAYLAND_DISPLAY; using the offscreen Qt platform "
            "(nothing will appear on screen)",
            file=sys.stderr,
        )


def run_station(
    runtime_factory: Callable[[], LoopRuntime],
    *,
    settings: LoopSettings | None = None,
    title: str | None = None,
    quit_after: int | None = None,
    screenshot: Path | None = None,
) -> int:
    """Open the station window on a runtime and run until the window closes.

    Args:
        runtime_factory: builds the station runtime (``core.station.runtime.build_runtime`` of
            a ``StationConfig``); called on the worker thread, again after a failure.
        settings: the run loop's back-off and polling (``LoopSettings.from_config``); default
            the window's own (``GUI_SETTINGS``).
        title: the window title; default ``"inspector — <station>"``.
        quit_after: close the window and quit after this many parts (smoke tests, demo).
        screenshot: save a PNG of the window here just before it closes.

    Returns:
        The exit code: 0 after a normal close.
    """
    ensure_qt_platform()
    # Qt is imported only now, after the platform is settled.
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import StationWindow
    from .worker import WorkerController

    app = QApplication.instance()
    owns_app = app is None
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("inspector")
        app.setApplicationDisplayName("inspector")
    assert isinstance(app, QApplication)

    controller = WorkerController(runtime_factory, settings=settings)
    window = StationWindow(controller, title=title, quit_after=quit_after, screenshot=screenshot)

    # The window's own close ends the run, and nothing else: with quit-on-last-window-closed Qt
    # would also *post* a quit request, which outlives this call when the application is
    # reused (tests, an embedding program) and stops the next event loop at once.
    quit_on_last_window = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    # A fresh application runs its main loop; a borrowed one gets a private loop, so that
    # exiting it leaves the owner's state (QCoreApplication.exit flags) untouched.
    loop = None if owns_app else QEventLoop()

    def _on_window_closed() -> None:
        if loop is None:
            app.exit(0)
        else:
            loop.exit(0)

    window.closed.connect(_on_window_closed)
    # Whatever else ends the main loop (a session logout, app.quit()), join the worker.
    app.aboutToQuit.connect(controller.shutdown)

    # Ctrl+C in the terminal closes the window like the operator would. Python only sees the
    # signal when the interpreter runs, hence the idle timer.
    interrupt_timer = QTimer()
    interrupt_timer.timeout.connect(lambda: None)
    interrupt_timer.start(200)
    try:
        previous_handler = signal.signal(signal.SIGINT, lambda *_: window.close())
    except ValueError:  # not the main thread (embedded use): keep the handler as it is
        previous_handler = None

    try:
        window.show()
        controller.start()
        code = app.exec() if loop is None else loop.exec()
    finally:
        interrupt_timer.stop()
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        window.close()  # no-op after a normal close; stops the worker otherwise
        controller.shutdown()
        app.aboutToQuit.disconnect(controller.shutdown)
        app.setQuitOnLastWindowClosed(quit_on_last_window)
        window.deleteLater()
    return int(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``inspector-gui`` console script: for now the demo line in the station window."""
    args = list(sys.argv[1:] if argv is None else argv)
    if importlib.util.find_spec("core.cli") is None:
        print("inspector-gui: core.cli is not available in this installation", file=sys.stderr)
        return 2
    from core.cli import main as cli_main

    return int(cli_main(["demo", *args]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
