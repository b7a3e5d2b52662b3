"""Starting the station window: ``run_station`` and the ``inspector-gui`` console script.

``inspector-gui`` opens the station for a line: the set-up saved in the user's config dir
(``station_settings``), or the one ``--config FILE`` names; on the first run (or with ``--setup``)
the set-up dialog asks for it and checks it. Start-up work (the visual log's migrations, the
model's check; the demo's first training) shows its progress in a window (``startup``). The
window's Station menu stops and starts the station and changes its set-up. ``inspector demo``
stays the demo. When Qt's xcb platform plugin lacks system libraries, the app names the
Debian/Ubuntu packages to install (``core.station.doctor``) and exits with status 3 instead of
letting Qt abort.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.station.config import StationConfig
    from core.station.loop import LoopRuntime, LoopSettings

    from .main_window import StationWindow
    from .startup import StartupJob

log = logging.getLogger(__name__)

EXIT_NO_WINDOW = 3  # the window cannot open on this machine (system libraries missing)
TRENDS_SHORTCUT = "F2"


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


def qt_platform_problem(
    environ: Mapping[str, str] | None = None, *, plugin: Path | None = None
) -> str | None:
    """Why the window cannot open with Qt's xcb platform here, with the packages to install; or None.

    Checked only where xcb is what Qt will load (Linux, an X display or ``QT_QPA_PLATFORM=xcb``):
    a missing library makes Qt abort the whole process, so it is named before Qt is touched.
    The check is the doctor's (``ldd`` on the plugin, sonames mapped to apt packages).
    """
    environ = os.environ if environ is None else environ
    platform = environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux"):
        return None
    uses_xcb = platform.startswith("xcb") or (
        not platform and bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")
    )
    if not uses_xcb:
        return None
    from core.station.doctor import Status, check_qt_libraries, xcb_plugin_path

    check = check_qt_libraries(plugin if plugin is not None else xcb_plugin_path())
    if check.status is not Status.FAIL:
        return x_display_problem(environ.get("DISPLAY"))
    lines = [f"inspector: {check.detail}"]
    if check.fix:
        lines.append(f"  fix: {check.fix}")
    lines.append("  (or run the station without a window: inspector run --headless ...)")
    return "\n".join(lines)


def x_display_problem(display: str | None) -> str | None:
    """Why the X display cannot be reached (Qt would abort), or None; asked of libxcb directly."""
    import ctypes

    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:  # no libxcb: the library check above names it
        return None
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode() if display else None, None)
    try:
        error = xcb.xcb_connection_has_error(connection)
    finally:
        xcb.xcb_disconnect(connection)
    if not error:
        return None
    return (
        f"inspector: the window cannot open: the X display {display or '(DISPLAY not set)'} cannot be "
        f"reached (xcb error {error})\n"
        "  fix: run it from the desktop session (DISPLAY=:0), and let this user use the display "
        "(XAUTHORITY, xhost)\n"
        "  (or run the station without a window: inspector run --headless ...)"
    )


class StationMenu:
    """The window's Station menu: stop/start the station and change its set-up.

    Args:
        config_file: Where the set-up is saved (the set-up dialog writes it).
        config: The set-up in use.

    Attributes:
        restart_with: Set when the window closed to open again on this set-up (start after a
            stop, or a changed set-up).
    """

    def __init__(self, config_file: Path, config: StationConfig) -> None:
        self.config_file = config_file
        self.config = config
        self.restart_with: StationConfig | None = None

    def install(self, window: StationWindow, controller: Any) -> None:
        from PySide6.QtGui import QAction, QKeySequence

        from . import theme

        bar = window.menuBar()
        bar.setStyleSheet(
            f"QMenuBar {{ background: {theme.PANEL}; color: {theme.TEXT}; font-size: 15px; }}"
            f"QMenuBar::item:selected {{ background: {theme.PANEL_RAISED}; }}"
            f"QMenu {{ background: {theme.PANEL_RAISED}; color: {theme.TEXT}; font-size: 15px; }}"
            "QMenu::item:selected { background: #0072B2; }"
        )
        menu = bar.addMenu("&Station")
        self.stop_action = QAction("Stop the station", window)
        self.stop_action.setShortcut(QKeySequence("Ctrl+Shift+S"))
        setup_action = QAction("Change the set-up…", window)
        setup_action.setShortcut(QKeySequence("Ctrl+,"))
        quit_action = QAction("Quit", window)
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        menu.addAction(self.stop_action)
        menu.addAction(setup_action)
        menu.addSeparator()
        menu.addAction(quit_action)

        def _on_stop_action_triggered() -> None:
            if controller.is_running:
                controller.shutdown()  # the window stays, showing the station stopped
                self.stop_action.setText("Start the station")
            else:
                self.restart_with = self.config
                window.close()

        def _on_setup_action_triggered() -> None:
            from .setup_dialog import SetupDialog

            dialog = SetupDialog(self.config_file, initial=self.config, parent=window)
            if dialog.exec() and dialog.config is not None:
                self.restart_with = dialog.config
                window.close()

        self.stop_action.triggered.connect(_on_stop_action_triggered)
        setup_action.triggered.connect(_on_setup_action_triggered)
        quit_action.triggered.connect(window.close)


def open_log_for(config: StationConfig) -> Callable[[], Any]:
    """Opens the station's visual log as ``config`` names it (for readers such as the trends)."""

    def _open() -> Any:
        from core.storage import VisualLog

        return VisualLog(config.db_url, media_root=config.media_root, station=config.station_name)

    return _open


def run_station(
    runtime_factory: Callable[[], LoopRuntime],
    *,
    settings: LoopSettings | None = None,
    title: str | None = None,
    quit_after: int | None = None,
    screenshot: Path | None = None,
    prepare: StartupJob | None = None,
    config: StationConfig | None = None,
    menu: StationMenu | None = None,
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
        prepare: start-up work run first, ``prepare(progress, log)``, with its progress in a
            window (the demo's training); its exception ends the run with status 1.
        config: the station's configuration: its visual log is opened (created or migrated)
            and its model bundle checked before the window opens, in the start-up window;
            and the window gets its trend page (read from that log).
        menu: the Station menu (stop/start, change the set-up).

    Returns:
        The exit code: 0 after a normal close, 1 when ``prepare`` failed, ``EXIT_NO_WINDOW``
        when Qt's platform plugin cannot load.
    """
    ensure_qt_platform()
    problem = qt_platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_NO_WINDOW
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

    jobs = [job for job in (prepare, _start_checks(config) if config is not None else None) if job]
    if jobs:
        from .startup import run_with_progress

        def _start_up(progress: Callable[[str, int, int], None], say: Callable[[str], None]) -> None:
            for job in jobs:
                job(progress, say)

        try:
            run_with_progress(_start_up, title=f"Starting {title or 'the station'}")
        except Exception as exc:
            log.exception("start-up failed")
            print(f"inspector: start-up failed: {exc}", file=sys.stderr)
            return 1

    controller = WorkerController(runtime_factory, settings=settings)
    window = StationWindow(controller, title=title, quit_after=quit_after, screenshot=screenshot)
    trends = None
    if config is not None and hasattr(window, "add_page"):
        from .trends import TrendsPage

        trends = TrendsPage(open_log_for(config))
        window.add_page("Trends", trends, shortcut=TRENDS_SHORTCUT)
        from core.common import paths

        from .workspace import install_workspace

        # Log-in, the threshold panel and the history: their threads stop when the window closes.
        install_workspace(
            window,
            config.db_url or paths.default_db_url(),
            media_root=config.media_root,
            station=config.station_name,
            bundle=config.model,
        )
    if menu is not None:
        menu.install(window, controller)

    # The window's own close ends the run, and nothing else: with quit-on-last-window-closed Qt
    # would also *post* a quit request, which outlives this call when the application is
    # reused (tests, an embedding program) and stops the next event loop at once.
    quit_on_last_window = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    # A fresh application runs its main loop; a borrowed one gets a private loop, so that
    # exiting it leaves the owner's state (QCoreApplication.exit flags) untouched.
    loop = None if owns_app else QEventLoop()

    def _on_window_closed() -> None:
        if trends is not None:
            trends.shutdown()
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
        if trends is not None:
            trends.shutdown()
        app.aboutToQuit.disconnect(controller.shutdown)
        app.setQuitOnLastWindowClosed(quit_on_last_window)
        window.deleteLater()
    return int(code)


def startup_config(
    config_file: Path | None,
    *,
    ask: Callable[[StationConfig | None], StationConfig | None],
    environ: Mapping[str, str] | None = None,
    force_setup: bool = False,
) -> StationConfig | None:
    """The set-up to start with: ``config_file`` if given, else the saved one, else ``ask``.

    Args:
        config_file: A file given with ``--config`` (used as it is; never asked for).
        ask: Shows the set-up dialog with the set-up to change (None: none yet); returns the
            saved set-up, or None when the operator cancelled.
        environ: ``INSPECTOR_<FIELD>`` variables to apply (default ``os.environ``).
        force_setup: Ask even when a set-up is saved (``--setup``).

    Raises:
        UserError, pydantic.ValidationError: A ``config_file`` that cannot be used.
    """
    from .station_settings import default_config_file, load_station_config

    if config_file is not None:
        return load_station_config(config_file, environ)
    saved = default_config_file()
    current: StationConfig | None = None
    if saved.exists():
        try:
            current = load_station_config(saved, environ)
        except Exception as exc:  # a damaged or outdated file: set up again
            log.warning("the saved set-up %s cannot be used (%s); asking again", saved, exc)
            print(f"inspector: the saved set-up {saved} cannot be used: {exc}", file=sys.stderr)
    if current is not None and not force_setup:
        return current
    return ask(current)


def _start_checks(config: StationConfig) -> StartupJob:
    """The work before the window: the visual log opened (created, migrated) and the model checked."""

    def _job(progress: Callable[[str, int, int], None], say: Callable[[str], None]) -> None:
        from core.model.bundle import read_card
        from core.storage import VisualLog

        say("Opening the visual log (its schema is brought up to date)…")
        progress("log", 0, 1)
        VisualLog(config.db_url, media_root=config.media_root, station=config.station_name).close()
        progress("log", 1, 1)
        say(f"Checking the model bundle {config.model}…")
        progress("model", 0, 1)
        read_card(config.model)  # the card and the weights' hash; the worker loads it
        progress("model", 1, 1)

    return _job


def main(argv: Sequence[str] | None = None) -> int:
    """The ``inspector-gui`` console script: the station for a line, set up in the window."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="inspector-gui",
        description="The operator station. The first start asks for the set-up and remembers it; "
        "the demo is 'inspector demo'.",
    )
    parser.add_argument("--config", type=Path, metavar="JSON", help="use this station configuration file")
    parser.add_argument("--setup", action="store_true", help="change the saved set-up before starting")
    parser.add_argument("--quit-after", type=int, metavar="N", help="exit after N parts (smoke tests)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG", help="save a picture of the window at exit")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    ensure_qt_platform()
    problem = qt_platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_NO_WINDOW
    from PySide6.QtWidgets import QApplication

    from core.common.errors import UserError
    from core.station.loop import LoopSettings
    from core.station.runtime import build_runtime

    from .setup_dialog import SetupDialog
    from .station_settings import default_config_file

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("inspector")
    config_file = args.config or default_config_file()

    def _ask(initial: StationConfig | None, *, problem: str | None = None) -> StationConfig | None:
        from PySide6.QtCore import QTimer

        dialog = SetupDialog(config_file, initial=initial)
        if problem:
            dialog.status.setText(problem)
            QTimer.singleShot(0, dialog.check)  # the reasons under their fields at once
        return dialog.config if dialog.exec() else None

    try:
        config = startup_config(args.config, ask=_ask, force_setup=args.setup)
    except (UserError, ValueError) as exc:
        print(f"inspector-gui: {exc}", file=sys.stderr)
        return 2
    while config is not None:
        menu = StationMenu(config_file, config)
        started = config

        def _factory(chosen: StationConfig = started) -> LoopRuntime:
            return build_runtime(chosen)

        code = run_station(
            _factory,
            settings=LoopSettings.from_config(config),
            title=config.station_name,
            quit_after=args.quit_after if args.quit_after is not None else config.max_parts,
            screenshot=args.screenshot,
            config=config,
            menu=menu,
        )
        if code == 1:  # the log or the model refused at start: change the set-up
            config = _ask(config, problem="The station could not start with this set-up; see the fields.")
            continue
        if menu.restart_with is None:
            return code
        config = menu.restart_with
    print("inspector-gui: no set-up was saved; nothing started", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
