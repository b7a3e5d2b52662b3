"""Who is logged in at the station window, and the idle lock that logs them out.

Watching the live screen needs no log-in. A supervisor logs in (``core.storage.auth``: Argon2,
the attempt recorded either way) to change the threshold or review parts; the :class:`Session`
holds the ``Actor`` that core checks again at every action, and forgets it after ``idle_lock_s``
without a key press or a click anywhere in the application, or on "Log out".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

if TYPE_CHECKING:
    from core.storage import VisualLog
    from core.storage.auth import Actor, Permission

log = logging.getLogger(__name__)

IDLE_LOCK_S = 300.0  # five minutes without a touch


class Session(QObject):
    """The logged-in user of the window (or nobody), with an idle lock.

    Args:
        open_log: Opens the visual log for the log-in checks (used on the GUI thread only).
        idle_lock_s: Log out after this long without input; 0: never.

    Signals:
        changed(object): the ``Actor`` now logged in, or None after a log-out.
        locked(): the idle lock logged the user out.
    """

    changed = Signal(object)
    locked = Signal()

    def __init__(
        self,
        open_log: Callable[[], VisualLog],
        *,
        idle_lock_s: float = IDLE_LOCK_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._open_log = open_log
        self._log: VisualLog | None = None
        self._actor: Actor | None = None
        self.idle_lock_s = float(idle_lock_s)
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(self._on_idle_timeout)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    # -- who ----------------------------------------------------------------------------------
    @property
    def actor(self) -> Actor | None:
        """The logged-in user, or None."""
        return self._actor

    def current_actor(self) -> Actor | None:
        """The logged-in user, or None (a callable for pages that act on a user's behalf)."""
        return self._actor

    def may(self, permission: Permission) -> bool:
        """Whether the logged-in user's role allows ``permission`` (for showing controls; core checks)."""
        return self._actor is not None and self._actor.may(permission)

    def log(self) -> VisualLog:
        """The session's own use of the visual log (GUI thread)."""
        if self._log is None:
            self._log = self._open_log()
        return self._log

    def needs_admin(self) -> bool:
        """True while no admin can log in: the log-in dialog then offers to create the first one."""
        return self.log().access.needs_admin()

    def log_in(self, name: str, password: str) -> Actor:
        """Check the password (core records the attempt); the user is logged in on success.

        Raises:
            NotAllowedError: Wrong name or password (the message never says which).
            StorageError: The log cannot be read.
        """
        actor = self.log().authenticate(name, password)
        self._set(actor)
        return actor

    def create_first_admin(self, name: str, password: str) -> Actor:
        """The first-run step: create the admin (only while none can log in) and log them in.

        Raises:
            NotAllowedError: An admin exists already.
            ValueError: An empty name, a taken one, or a password too short.
        """
        self.log().add_user(name, role="admin", password=password)
        return self.log_in(name, password)

    def log_out(self) -> None:
        """Forget the user (nothing to record: the log-in was recorded, actions are)."""
        self._set(None)

    def touch(self) -> None:
        """Input from the user: the idle lock starts again."""
        if self._actor is not None and self.idle_lock_s > 0:
            self._idle.start(max(1, round(self.idle_lock_s * 1000)))

    def _set(self, actor: Actor | None) -> None:
        self._actor = actor
        if actor is None:
            self._idle.stop()
        else:
            self.touch()
        self.changed.emit(actor)

    def _on_idle_timeout(self) -> None:
        if self._actor is not None:
            log.info(
                "idle lock: %s logged out after %.0f s without input", self._actor.name, self.idle_lock_s
            )
            self._set(None)
            self.locked.emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if self._actor is not None and event.type() in (QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress):
            self.touch()
        return False

    def shutdown(self) -> None:
        """Log out, stop watching input and close the session's log."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self._idle.stop()
        self._actor = None
        if self._log is not None:
            try:
                self._log.close()
            finally:
                self._log = None
