"""The supervisor's side of the station window: log-in, the threshold page, the history page.

``install_workspace(window, log_url, ...)`` adds to a ``StationWindow`` (through ``add_page``) a
log-in control in the header and the supervisor pages, all reading the visual log at
``log_url`` with connections of their own. Watching the live screen needs no log-in; the pages
act on the logged-in user's behalf, and core checks every action again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton

from .login_dialog import LoginDialog
from .session import IDLE_LOCK_S, Session
from .threshold_panel import ThresholdPage

if TYPE_CHECKING:
    from core.storage import VisualLog

    from .history_page import HistoryPage
    from .main_window import StationWindow

THRESHOLD_SHORTCUT = "F4"
LOGIN_SHORTCUT = "Ctrl+L"


class Workspace(QObject):
    """What ``install_workspace`` added: the session, the log-in button and the pages.

    Attributes:
        session: Who is logged in.
        login_button: The header's "Log in" / "name (role) · Log out" control.
        threshold_page: The threshold panel.
        history_page: The history page, when installed.
        login_dialog: The dialog while it is open (tests drive it).
    """

    def __init__(self, window: StationWindow, session: Session, threshold_page: ThresholdPage) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.threshold_page = threshold_page
        self.history_page: HistoryPage | None = None
        self.login_dialog: LoginDialog | None = None
        self.login_button = QPushButton("Log in")
        self.login_button.setObjectName("nav")
        self.login_button.setToolTip(f"Log in as a supervisor ({LOGIN_SHORTCUT}); watching needs none")
        self.login_button.clicked.connect(self._on_login_button_clicked)
        header = window.findChild(QFrame, "header")
        layout = header.layout() if header is not None else None
        if isinstance(layout, QHBoxLayout):
            layout.insertWidget(max(0, layout.count() - 1), self.login_button)  # before the clock
        session.changed.connect(self._on_session_changed)
        # The acknowledgement of an alarm is recorded under the logged-in name.
        window.user_provider = lambda: session.actor.name if session.actor is not None else None

    def open_login(self) -> LoginDialog:
        """Show the log-in dialog (or the first-admin step); returns it."""
        dialog = LoginDialog(self.session, self.window)
        self.login_dialog = dialog
        dialog.finished.connect(self._on_login_dialog_finished)
        dialog.open()
        return dialog

    def _on_login_button_clicked(self) -> None:
        if self.session.actor is not None:
            self.session.log_out()
        else:
            self.open_login()

    def _on_login_dialog_finished(self, _result: int) -> None:
        if self.login_dialog is not None:
            self.login_dialog.deleteLater()
        self.login_dialog = None

    def _on_session_changed(self, actor: Any) -> None:
        if actor is None:
            self.login_button.setText("Log in")
        else:
            self.login_button.setText(f"{actor.name} ({actor.role.value}) · Log out")

    def shutdown(self) -> None:
        """Stop the pages' threads and close the session's log (the window closes them too)."""
        self.threshold_page.shutdown()  # the history page stops itself when the window closes
        self.session.shutdown()


def install_workspace(
    window: StationWindow,
    log_url: str,
    *,
    media_root: Path | None = None,
    station: str = "station-1",
    bundle: Path | None = None,
    export_dir: Path | None = None,
    idle_lock_s: float = IDLE_LOCK_S,
    history: bool = True,
    opener: Callable[..., VisualLog] | None = None,
) -> Workspace:
    """Add the log-in control and the supervisor pages to the station window.

    Args:
        window: The station window.
        log_url: The visual log's URL (the pages open their own connections to it).
        media_root: Its media folder (default: the data directory's).
        station: The station whose threshold the panel shows and changes.
        bundle: The station's model bundle (the history's other CAM methods).
        export_dir: The folder the shift export proposes.
        idle_lock_s: Log out after this long without input; 0: never.
        history: Also add the history page.
        opener: Makes a ``VisualLog`` (tests); default ``core.storage.VisualLog``.
    """
    if opener is None:
        from core.storage import VisualLog

        opener = VisualLog
    make = opener

    def open_log() -> VisualLog:
        return make(log_url, media_root=media_root, station=station)

    session = Session(open_log, idle_lock_s=idle_lock_s, parent=window)
    page = ThresholdPage(session, open_log)
    window.add_page("Threshold", page, shortcut=THRESHOLD_SHORTCUT)
    controller = window.controller
    if controller is not None:
        # The running station reads the new value before its very next part, not within a second.
        worker = controller.worker
        page.applied.connect(lambda _change: worker.threshold_changed())
    workspace = Workspace(window, session, page)
    if history:
        from .history_page import install_history_page

        workspace.history_page = install_history_page(
            window,
            log_url,
            media_root=media_root,
            actor=session.current_actor,
            bundle=bundle,
            export_dir=export_dir,
            opener=opener,
        )
    from PySide6.QtGui import QKeySequence, QShortcut

    QShortcut(QKeySequence(LOGIN_SHORTCUT), window, activated=workspace.open_login)
    window.closed.connect(workspace.shutdown)
    return workspace
