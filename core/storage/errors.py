"""Errors of the visual log, split the way the operator needs them.

``StorageError`` is the environment refusing (disk full, read-only, locked, unreachable,
damaged): the station shows it as an alarm, records or keeps the part elsewhere and retries; it
is not a bug. ``DuplicatePartError`` is a caller's bug. Anything else is a bug and propagates
unchanged.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

StorageProblem = Literal["disk_full", "read_only", "locked", "corrupt", "io_error", "unavailable"]

_HUMAN: dict[StorageProblem, str] = {
    "disk_full": "the disk is full. Free some space; recording resumes by itself",
    "read_only": "the storage is read-only. Check the drive and its permissions",
    "locked": "another program holds a lock on the database. Recording resumes when it lets go",
    "corrupt": "the database file is damaged. Stop the station and restore the log from a backup",
    "io_error": "the drive reported an input/output error. Check the drive and its cable",
    "unavailable": "the database cannot be reached or opened. Check the path, the network or the server",
}

# Lower-case fragments of driver messages (SQLite, then PostgreSQL), first match wins.
_MESSAGE_FRAGMENTS: tuple[tuple[str, StorageProblem], ...] = (
    ("database or disk is full", "disk_full"),
    ("no space left", "disk_full"),
    ("could not extend file", "disk_full"),
    ("disk quota exceeded", "disk_full"),
    ("readonly database", "read_only"),
    ("read-only", "read_only"),
    ("database is locked", "locked"),
    ("database table is locked", "locked"),
    ("lock timeout", "locked"),
    ("could not obtain lock", "locked"),
    ("malformed", "corrupt"),
    ("file is not a database", "corrupt"),
    ("disk i/o error", "io_error"),
    ("unable to open database", "unavailable"),
)

_ERRNO_PROBLEMS: dict[int, StorageProblem] = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EROFS: "read_only",
    errno.EACCES: "read_only",
    errno.EPERM: "read_only",
    errno.EIO: "io_error",
}


class StorageError(RuntimeError):
    """The environment refused to store or read the visual log; show ``str(error)`` to the operator.

    Nothing already committed is lost; the log can be used again once the cause is gone, without
    reopening it.

    Attributes:
        problem: What went wrong, for choosing an alarm: ``disk_full``, ``read_only``,
            ``locked``, ``corrupt``, ``io_error`` or ``unavailable``.
        where: The database URL (password hidden) or the media folder concerned.
    """

    def __init__(self, problem: StorageProblem, where: str, detail: str = "") -> None:
        message = f"The visual log at {where} cannot be used: {_HUMAN[problem]}."
        if detail:
            message += f" ({detail})"
        super().__init__(message)
        self.problem: StorageProblem = problem
        self.where = where


class DuplicatePartError(ValueError):
    """A decision for this part id is already in the log; the log keeps the first one only."""

    def __init__(self, part_id: str) -> None:
        super().__init__(f"part {part_id} is already in the visual log; a decision is recorded once")
        self.part_id = part_id


class NotAllowedError(ValueError):
    """The user named for a review, threshold change or keep mark is unknown, inactive or lacks the role."""


def problem_from_message(message: str) -> StorageProblem | None:
    lowered = message.lower()
    for fragment, problem in _MESSAGE_FRAGMENTS:
        if fragment in lowered:
            return problem
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def environment_errors(where: str) -> Iterator[None]:
    """Turn environment failures raised inside the block into ``StorageError``.

    Operational database errors are environmental by definition (DB-API); other database errors
    only when their message says so (e.g. PostgreSQL's read-only transaction). Integrity and
    programming errors are bugs and pass through.
    """
    try:
        yield
    except (IntegrityError, ProgrammingError):
        raise
    except OperationalError as exc:
        detail = _first_line(exc)
        raise StorageError(problem_from_message(detail) or "unavailable", where, detail) from exc
    except DBAPIError as exc:
        detail = _first_line(exc)
        problem = problem_from_message(detail)
        if problem is None and not exc.connection_invalidated:
            raise
        raise StorageError(problem or "unavailable", where, detail) from exc
    except OSError as exc:
        problem = _ERRNO_PROBLEMS.get(exc.errno or 0, "io_error")
        raise StorageError(problem, str(exc.filename or where), exc.strerror or str(exc)) from exc
