"""The log-in dialog: name and password, or, on the first run, the first admin.

A refused log-in shows core's words ("wrong user name or password": never which) and stays open;
core has recorded the attempt. While the log has no admin who can log in, the dialog offers to
create one (the same first-run step as ``inspector users add NAME --role admin``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from core.storage.errors import NotAllowedError, StorageError

from . import theme
from .review_style import REVIEW_STYLE
from .session import Session


class LoginDialog(QDialog):
    """Logs a user in to ``session`` (or creates the first admin); accepted once someone is in.

    Attributes:
        first_run: True when the dialog creates the first admin.
        message: The last refusal or problem shown, or "".
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.message = ""
        try:
            self.first_run = session.needs_admin()
        except StorageError as exc:
            self.first_run = False
            self.message = str(exc)
        self.setWindowTitle("Create the first admin" if self.first_run else "Log in")
        self.setModal(True)
        self.setStyleSheet(theme.STYLE_SHEET + REVIEW_STYLE)
        self.setMinimumWidth(420)

        intro = QLabel(
            "No admin can log in yet. Create the first admin: they register the supervisors."
            if self.first_run
            else "Log in to change the threshold or review parts. Watching needs no log-in."
        )
        intro.setWordWrap(True)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("loginName")
        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("loginPassword")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat_edit = QLineEdit()
        self.repeat_edit.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow("User", self.name_edit)
        form.addRow("Password", self.password_edit)
        if self.first_run:
            form.addRow("Again", self.repeat_edit)
        else:
            self.repeat_edit.hide()
        self.message_label = QLabel(self.message)
        self.message_label.setObjectName("loginMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Create and log in" if self.first_run else "Log in")
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.message_label)
        layout.addWidget(buttons)
        self.name_edit.setFocus()

    def submit(self) -> bool:
        """Try the name and password; True (and the dialog accepted) when someone is logged in."""
        name, password = self.name_edit.text().strip(), self.password_edit.text()
        try:
            if self.first_run:
                if password != self.repeat_edit.text():
                    return self._refused("The two passwords differ.")
                self._session.create_first_admin(name, password)
            else:
                self._session.log_in(name, password)
        except (NotAllowedError, StorageError, ValueError) as exc:
            return self._refused(str(exc))
        self.password_edit.clear()
        self.repeat_edit.clear()
        self.accept()
        return True

    def _refused(self, message: str) -> bool:
        self.message = message[:1].upper() + message[1:]
        self.message_label.setText(self.message)
        self.password_edit.clear()
        self.repeat_edit.clear()
        self.password_edit.setFocus()
        return False
