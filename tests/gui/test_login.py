"""Log-in at the station window: the dialog, the first admin, refusals recorded, the idle lock."""

from __future__ import annotations

from pathlib import Path

from known_truth import PASSWORDS, STATION, make_known_log
from PySide6.QtCore import Qt

from core.storage import VisualLog
from inspector_gui.main_window import StationWindow
from inspector_gui.session import Session
from inspector_gui.workspace import install_workspace


def _window(qtbot, url: str, media_root: Path, **options):  # type: ignore[no-untyped-def]
    window = StationWindow()
    qtbot.addWidget(window)
    window.show()
    workspace = install_workspace(
        window, url, media_root=media_root, station=STATION, history=False, **options
    )
    return window, workspace


def test_log_in_wrong_password_recorded_then_log_out(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    known = make_known_log(tmp_path, parts=4)
    window, workspace = _window(qtbot, known.url, known.media_root)
    assert workspace.login_button.text() == "Log in" and window.user_provider() is None

    dialog = workspace.open_login()
    assert not dialog.first_run
    dialog.name_edit.setText("sara")
    dialog.password_edit.setText("not her password")
    assert not dialog.submit()
    assert dialog.message == "Wrong user name or password" and dialog.isVisible()
    dialog.password_edit.setText(PASSWORDS["sara"])
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert workspace.session.actor is not None and workspace.session.actor.name == "sara"
    assert workspace.login_button.text() == "sara (supervisor) · Log out"
    assert window.user_provider() == "sara"  # alarms are acknowledged under her name

    qtbot.mouseClick(workspace.login_button, Qt.MouseButton.LeftButton)
    assert workspace.session.actor is None and workspace.login_button.text() == "Log in"
    window.close()
    with VisualLog(known.url, media_root=known.media_root, station=STATION) as log:
        events = [(e.user, e.event) for e in log.access.events(limit=3)]
    assert events[:2] == [("sara", "login"), ("sara", "login_failed")]


def test_the_first_run_creates_the_admin_from_the_dialog(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, media = f"sqlite:///{tmp_path / 'fresh.sqlite'}", tmp_path / "media"
    window, workspace = _window(qtbot, url, media)
    dialog = workspace.open_login()
    assert dialog.first_run and dialog.windowTitle() == "Create the first admin"
    dialog.name_edit.setText("root")
    dialog.password_edit.setText("a long password")
    dialog.repeat_edit.setText("another one")
    assert not dialog.submit() and "differ" in dialog.message
    dialog.password_edit.setText("a long password")
    dialog.repeat_edit.setText("a long password")
    assert dialog.submit()
    assert workspace.session.actor is not None and workspace.session.actor.role.value == "admin"
    assert not workspace.session.needs_admin()
    window.close()


def test_the_idle_lock_logs_out_and_input_postpones_it(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    known = make_known_log(tmp_path, parts=2)
    window, workspace = _window(qtbot, known.url, known.media_root, idle_lock_s=0.6)
    session: Session = workspace.session
    session.log_in("sara", PASSWORDS["sara"])
    for _ in range(3):  # keys keep her logged in past the lock time
        qtbot.wait(300)
        qtbot.keyClick(window, Qt.Key.Key_Shift)
    assert session.actor is not None
    with qtbot.waitSignal(session.locked, timeout=3000):
        pass
    assert session.actor is None and workspace.login_button.text() == "Log in"
    window.close()
