"""One station per inbox: a lock file that names its holder, held with an OS lock.

Two stations on one inbox would both take files (each file two rows, moves racing). The inbox's
``.inspector/station.lock`` file is locked with ``fcntl.flock`` (POSIX) or ``msvcrt.locking`` (Windows)
for as long as the hot folder is open, and names the holder (host, pid, since). The OS releases
the lock when its process dies, so a lock file left by a crash is simply taken over. Where the
file system has no locks at all the file's contents decide: a live process on this host named
there keeps the inbox, anything else is stale and taken over.

The lock lives in a hidden folder of the inbox: the hot folder never takes it as a part, and the
inbox holds no extra file. The lock file is removed when the hot folder closes (the folder stays).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.common.errors import UserError

LOCK_DIR = ".inspector"  # a folder: listings of the inbox's files stay as they were
LOCK_NAME = f"{LOCK_DIR}/station.lock"
_WINDOWS_LOCK_OFFSET = 1 << 20  # Windows locks are mandatory: lock a byte past the holder text


class InboxLockedError(UserError):
    """Another station holds the inbox; ``str()`` names it."""


class InboxLock:
    """The lock on one inbox folder. ``acquire`` once, ``release`` when done (twice is fine).

    Args:
        folder: The inbox.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the inbox or refuse.

        Raises:
            InboxLockedError: Another live station holds it (the message names host and pid).
            OSError: The lock file cannot be created (a read-only folder, permissions).
        """
        if self._fd is not None:
            return
        for _ in range(10):
            fd = self._lock_file()
            if fd is not None:
                self._fd = fd
                return
        raise InboxLockedError(f"inbox {self.folder}: its lock file keeps being replaced; another station?")

    def _lock_file(self) -> int | None:
        """The locked lock file's descriptor; None when the file was replaced meanwhile."""
        self.path.parent.mkdir(exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _os_lock(fd):
                holder = _read(fd)
                if holder and _alive_here(holder):
                    raise self._refused(holder)
                # No OS locks here and the named holder is gone: stale, taken over.
            if not _same_file(fd, self.path):
                # The holder removed it between our open and our lock (it was releasing): the
                # lock we got is on a file nobody else will ever look at. Try the new one.
                os.close(fd)
                return None
            _write_holder(fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise self._refused(_read_path(self.path)) from None
            raise
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self) -> None:
        """Let go of the inbox and remove the lock file (while still locked, so that a station
        taking it meanwhile notices the file was replaced and takes the new one)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass  # a read-only folder now: the holder text stays, and the OS lock is gone anyway
        finally:
            os.close(fd)  # closing drops the OS lock

    def _refused(self, holder: str) -> InboxLockedError:
        who = holder.strip() or "holder unknown"
        return InboxLockedError(
            f"inbox {self.folder} is in use by another station ({who}); "
            "stop that station or give this one another inbox"
        )


def _os_lock(fd: int) -> bool:
    """Lock ``fd`` without waiting. True when locked; False when this file system has no locks.

    Raises:
        OSError: With EAGAIN/EWOULDBLOCK/EACCES when another process holds the lock.
    """
    try:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return False
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _write_holder(fd: int) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    text = f"host {socket.gethostname()} pid {os.getpid()} since {since}\n"
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode("utf-8"))


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", errors="replace")


def _read_path(path: Path) -> str:
    try:
        return path.read_bytes()[:4096].decode("utf-8", errors="replace")
    except OSError:
        return ""


def _alive_here(holder: str) -> bool:
    """Whether the holder text names a process alive on this host (when in doubt: alive)."""
    words = holder.split()
    try:
        host = words[words.index("host") + 1]
        pid = int(words[words.index("pid") + 1])
    except (ValueError, IndexError):
        return False  # not our format: nobody we know holds it
    if host != socket.gethostname():
        return True  # another machine's process: we cannot tell, so we do not take it
    if pid == os.getpid():
        return False  # our own, left by a source that was not closed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
