"""Starting ``inspector-gui``: start-up work shows its progress in a window, and a machine whose
Qt xcb plugin lacks system libraries gets the packages to install and a non-zero exit, not an abort."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from native_libs import plugin_missing
from PySide6.QtWidgets import QApplication

from inspector_gui import app as gui_app
from inspector_gui.startup import StartupDialog, run_with_progress


def test_start_up_work_runs_off_the_gui_thread_with_its_progress_in_a_window(qtbot) -> None:
    gui_thread = threading.get_ident()
    job_threads: list[int] = []
    dialogs: list[StartupDialog] = []

    def _job(progress, say):  # noqa: ANN001, ANN202
        job_threads.append(threading.get_ident())
        assert dialogs and dialogs[0].isVisible()  # the window is up before the work starts
        say("training the demo model")
        for step in range(1, 4):
            progress("train", step, 3)
        return "model-dir"

    def _keep(dialog: StartupDialog) -> None:
        dialogs.append(dialog)
        # Kept for the asserts below (the function deletes the window when it is done).
        dialog.finished_shown = dialog.shown  # type: ignore[attr-defined]

    assert run_with_progress(_job, title="starting demo", on_dialog=_keep) == "model-dir"
    shown = dialogs[0].finished_shown  # type: ignore[attr-defined]
    assert job_threads and job_threads[0] != gui_thread
    assert [s[:3] for s in shown] == [
        ("Training the model (epoch 1): 1 of 3", 1, 3),
        ("Training the model (epoch 1): 2 of 3", 2, 3),
        ("Training the model (epoch 1): 3 of 3", 3, 3),
    ]
    assert all(s[3] == gui_thread for s in shown)  # painted on the GUI thread only


def test_a_failing_start_up_raises_its_error_to_the_caller(qtbot) -> None:
    def _job(progress, say):  # noqa: ANN001, ANN202
        progress("model", 0, 1)
        raise RuntimeError("the model bundle was refused")

    with pytest.raises(RuntimeError, match="refused"):
        run_with_progress(_job, title="starting")
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible()]


@pytest.fixture
def plugin_missing_a_library(tmp_path: Path) -> Path:
    """A real shared object linking ``libinspectorguigone.so.1``, which is then deleted."""
    return plugin_missing(tmp_path, "libinspectorguigone.so.1")


def test_missing_xcb_libraries_are_named_with_their_packages_and_exit_non_zero(
    plugin_missing_a_library: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import core.station.doctor as doctor

    real_plugin = doctor.xcb_plugin_path()
    monkeypatch.setattr(doctor, "xcb_plugin_path", lambda: plugin_missing_a_library)
    monkeypatch.setitem(doctor.APT_PACKAGES, "libinspectorguigone.so.1", "libxcb-cursor0")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    code = gui_app.main(["--config", "/nonexistent.json"])
    err = capsys.readouterr().err
    assert code == gui_app.EXIT_NO_WINDOW != 0
    assert "libinspectorguigone.so.1" in err and "sudo apt-get install libxcb-cursor0" in err
    assert "--headless" in err
    # Offscreen (or a Wayland session) does not load xcb: nothing to say.
    assert gui_app.qt_platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert gui_app.qt_platform_problem({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}) is None
    # The real plugin on this machine: a problem exactly when the doctor finds libraries missing.
    monkeypatch.undo()
    if real_plugin is not None and shutil.which("ldd") and not doctor.missing_libraries(real_plugin):
        # The libraries are there, the display is not: said in words too (Qt would abort).
        problem = gui_app.qt_platform_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":987"})
        assert problem is not None and "X display :987 cannot be reached" in problem


def test_the_station_menu_stops_and_starts_the_station_and_the_window_has_trends(
    qtbot, qapp, tmp_path: Path, tiny_model: Path
) -> None:
    from gui_fakes import FAST_WORKER, FakeLine, make_inspected_part
    from PySide6.QtCore import QTimer

    from core.common.types import Verdict
    from core.station.config import StationConfig
    from inspector_gui.main_window import StationWindow
    from inspector_gui.trends import TrendsPage

    line = FakeLine([make_inspected_part(i, Verdict.GOOD) for i in range(3)], endless=True, delay_s=0.01)
    config = StationConfig(
        source=f"hotfolder:{tmp_path}",
        model=tiny_model,
        db_url=f"sqlite:///{tmp_path / 'log.sqlite'}",
    )
    menu = gui_app.StationMenu(tmp_path / "station.json", config)
    seen: dict[str, object] = {}

    def _window() -> StationWindow | None:
        found = [w for w in QApplication.topLevelWidgets() if isinstance(w, StationWindow) and w.isVisible()]
        return found[0] if found else None

    def _stop() -> None:
        window = _window()
        if window is None or seen:  # still starting up (the start-up window), or done
            return
        seen["pages"] = [type(window.pages.widget(i)).__name__ for i in range(window.pages.count())]
        menu.stop_action.trigger()  # stop: the worker ends, the window stays
        seen["running_after_stop"] = window.controller.is_running
        seen["window_open_after_stop"] = window.isVisible()
        seen["action_text"] = menu.stop_action.text()
        menu.stop_action.trigger()  # start: the window closes to open again on a fresh worker

    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(lambda: [w.close() for w in QApplication.topLevelWidgets()])
    guard.start(10_000)
    poll = QTimer()
    poll.timeout.connect(_stop)
    poll.start(100)
    try:
        code = gui_app.run_station(line.factory, settings=FAST_WORKER, config=config, menu=menu)
    finally:
        guard.stop()
        poll.stop()
    assert code == 0
    assert seen["pages"][1] == TrendsPage.__name__  # type: ignore[index]
    assert seen["running_after_stop"] is False and seen["window_open_after_stop"] is True
    assert seen["action_text"] == "Start the station"
    assert menu.restart_with == config  # app.main opens the window again on it
    assert (tmp_path / "log.sqlite").is_file()  # created and migrated in the start-up window
    assert all(runtime.closed for runtime in line.runtimes)
