"""Logging in at the command line: the commands that change records authenticate like the window.

A name alone proves nothing: every record-changing command (``threshold set``, ``review``,
``keep``, ``users add``, ``prune``, ``shifts --set``, ``run --threshold``) asks for the user's
password. On a terminal it is prompted for (``getpass``, never echoed); scripts give it in a file
(``--password-file``, first line) or in the environment (``INSPECTOR_PASSWORD``). A new user's
password comes the same ways (``--new-password-file``, ``INSPECTOR_NEW_PASSWORD``, or a prompt
asked twice).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.common.errors import UserError

if TYPE_CHECKING:
    from core.storage import VisualLog
    from core.storage.auth import Actor

PASSWORD_ENV = "INSPECTOR_PASSWORD"
NEW_PASSWORD_ENV = "INSPECTOR_NEW_PASSWORD"


def add_login_flags(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add ``--user`` and ``--password-file`` to a command that changes records."""
    p.add_argument(
        "--user",
        required=False,
        help="who you are; your password is asked for"
        + ("" if required else " (needed only when this changes records)")
        + f" (scripts: --password-file or {PASSWORD_ENV})",
    )
    p.add_argument(
        "--password-file", type=Path, metavar="FILE", help="read your password from this file's first line"
    )


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _from_file(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the password file {path}: {exc.strerror or exc}") from exc
    return lines[0] if lines else ""


def read_password(args: argparse.Namespace, name: str) -> str:
    """The acting user's password: from ``--password-file``, ``INSPECTOR_PASSWORD`` or a prompt.

    Raises:
        UserError: None of them is there (not a terminal, nothing given).
    """
    path = getattr(args, "password_file", None)
    if path is not None:
        return _from_file(path)
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if _interactive():
        return getpass.getpass(f"password for {name}: ")
    raise UserError(
        f"no password for {name}: give --password-file or set {PASSWORD_ENV} (no terminal to ask)"
    )


def login(log: VisualLog, args: argparse.Namespace) -> Actor:
    """Authenticate the user named by ``--user`` (asked for on a terminal) against ``log``.

    Raises:
        UserError: No user named, or no password to be had.
        NotAllowedError: Wrong name or password (recorded in the log; shown as one line, exit 2).
    """
    name = getattr(args, "user", None)
    if not name:
        if not _interactive():
            raise UserError("this changes records: name yourself with --user (and give your password)")
        name = input("user: ").strip()
    return log.authenticate(name, read_password(args, name))


def read_new_password(args: argparse.Namespace, name: str) -> str:
    """A new password for ``name``: ``--new-password-file``, ``INSPECTOR_NEW_PASSWORD``, or asked twice.

    Raises:
        UserError: Nothing given and no terminal, or the two typed passwords differ.
    """
    path = getattr(args, "new_password_file", None)
    if path is not None:
        return _from_file(path)
    if os.environ.get(NEW_PASSWORD_ENV):
        return os.environ[NEW_PASSWORD_ENV]
    if not _interactive():
        raise UserError(
            f"no password for {name}: give --new-password-file or set {NEW_PASSWORD_ENV} (no terminal to ask)"
        )
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first
