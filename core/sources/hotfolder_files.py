"""What the hot folder needs to know about single files: names, keys, kinds, network shares.

Kept apart from ``core.sources.hotfolder`` (the source and its threads) so each stays readable.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

# Most file systems limit one name to 255 bytes (NAME_MAX); a tagged name must fit.
NAME_MAX_BYTES = 255
_LONGEST_KEPT_SUFFIX = 32  # bytes; a longer "extension" is part of the name, not a file type

_SKIP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".filepart", ".swp", "~")
# File systems whose change events cannot be trusted (or never arrive): poll only.
_NETWORK_FS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "virtiofs", "vboxsf",
        "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.rclone",
        "fuse.davfs2", "davfs", "fuse.vmhgfs-fuse", "lustre", "gpfs",
    }
)  # fmt: skip

Key = tuple[int, int]  # (size, mtime_ns): a file whose key stays the same is not being written


def is_network_path(path: Path) -> bool:
    """Whether ``path`` lies on a network (or VM-shared) file system, where watch events fail."""
    text = str(path)
    if text.startswith(("\\\\", "//")):  # a UNC path
        return True
    try:
        resolved = str(Path(path).resolve())
        best, fs = "", ""
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1].replace("\\040", " ")
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fs = mount, fields[2]
    except OSError:  # not Linux
        return False
    return fs in _NETWORK_FS


def display_path(path: Path) -> str:
    """The path as text that any database stores (undecodable bytes in names become U+FFFD)."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def skipped(name: str) -> bool:
    """Hidden and temporary names: writes still in progress (and the inbox's lock file)."""
    return name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES)


def key_of(path: Path) -> Key | None:
    """Size and modification time of a regular file (following links); None when gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def lkey_of(path: Path) -> Key | None:
    """Like ``key_of`` but of the entry itself (a link, a FIFO): never opens or follows it."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def entry_kind(entry: os.DirEntry[str]) -> str | None:
    """What an inbox entry is: "file", "dir", "gone", or why it is not a regular file.

    A link to a regular file is a file. Anything else that is no folder can never be read as an
    image (a FIFO would even block the reader forever), yet it was put there: the station gives
    it a row saying what it is instead of ignoring it for ever.
    """
    try:
        if entry.is_file():
            return "file"
        if entry.is_dir():
            return "dir"
        return special_kind(Path(entry.path))
    except OSError:
        return "gone"


def special_kind(path: Path) -> str | None:
    """Why ``path`` is not a regular file ("dangling symbolic link", "a FIFO", ...); None when
    it is one (or a folder), "gone" when it vanished."""
    try:
        lst = path.lstat()
    except OSError:
        return "gone"
    if stat.S_ISLNK(lst.st_mode):
        try:
            st = path.stat()
        except FileNotFoundError:
            return "dangling symbolic link"
        except OSError as exc:  # a loop of links, a target we may not see
            return f"unreadable symbolic link ({exc.strerror or exc})"
    else:
        st = lst
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def tagged_name(name: str, tag: str, *, limit: int = NAME_MAX_BYTES) -> str:
    """``stem.TAG.ext``, shortened to fit ``limit`` bytes when ``name`` is long.

    A long stem is cut on a UTF-8 character boundary and followed by a short hash of the whole
    original name, so two long names that share their beginning still get different names; the
    extension stays, so the file still opens in an image viewer.
    """
    raw = os.fsencode(name)
    dot = raw.rfind(b".")
    if dot > 0 and len(raw) - dot <= _LONGEST_KEPT_SUFFIX:
        stem, suffix = raw[:dot], raw[dot:]
    else:
        stem, suffix = raw, b""
    middle = b"." + os.fsencode(tag)
    whole = stem + middle + suffix
    if len(whole) <= limit:
        return os.fsdecode(whole)
    digest = b"~" + hashlib.sha256(raw).hexdigest()[:8].encode()
    room = max(0, limit - len(digest) - len(middle) - len(suffix))
    cut = room
    while 0 < cut < len(stem) and stem[cut] & 0xC0 == 0x80:  # never inside a UTF-8 character
        cut -= 1
    return os.fsdecode(stem[:cut] + digest + middle + suffix)


def read_regular(path: Path) -> bytes | None:
    """The bytes of ``path``, or None when it is not (any longer) a regular file.

    Opened without blocking and checked on the open handle: a FIFO put in place of the file
    after the scan must not block the reader thread for ever.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb", closefd=True) as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        return fh.read()
