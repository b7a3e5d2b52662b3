"""The log's media files: images and heatmaps encoded, written durably, found, read and cleaned up.

Media files are written (atomically, synced, their folders synced) before a decision's row is
committed, so a committed row always has its files; a crash in between leaves only an orphan
file, never a row without its heatmap. Rows hold paths relative to the media root.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import cv2
import numpy as np

from core.common.fileio import fsync_dir, write_atomic
from core.common.types import Part

_log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def encode_heatmap(heatmap: Any) -> bytes:
    """A heatmap as PNG bytes.

    Raises:
        ValueError: Not a non-empty 2-D uint8 array.
    """
    if (
        not isinstance(heatmap, np.ndarray)
        or heatmap.dtype != np.uint8
        or heatmap.ndim != 2
        or heatmap.size == 0
    ):
        described = (
            f"{heatmap.dtype} {heatmap.shape}" if isinstance(heatmap, np.ndarray) else type(heatmap).__name__
        )
        raise ValueError(f"a heatmap must be a non-empty 2-D uint8 array, not {described}")
    return _encode_png(heatmap)


def _encode_png(pixels: np.ndarray) -> bytes:
    try:
        ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    except cv2.error as exc:
        raise ValueError(f"cannot encode a {pixels.dtype} {pixels.shape} image as PNG: {exc}") from exc
    if not ok:
        raise ValueError(f"cannot encode a {pixels.dtype} {pixels.shape} image as PNG")
    return bytes(buffer.tobytes())


def image_payload(part: Part) -> tuple[bytes, str] | None:
    """The bytes to keep for a part's image and their file extension (None without an image).

    The original file's bytes when the part has them, otherwise its decoded image as PNG.
    """
    if part.encoded is not None:
        return part.encoded, _original_suffix(part.source_ref, part.encoded)
    if part.image is not None:
        return _encode_png(part.image), ".png"
    return None


def _original_suffix(source_ref: str, data: bytes) -> str:
    suffix = PurePath(source_ref).suffix.lower()
    if suffix in _IMAGE_SUFFIXES:
        return suffix
    for magic, sniffed in _MAGIC:
        if data.startswith(magic):
            return sniffed
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".bin"  # not an image we know: keep the bytes, do not pretend they are a PNG


def media_path(media_root: Path, relative: str) -> Path:
    """The absolute path of a media file named in a decision.

    Raises:
        ValueError: ``relative`` is absolute or leaves the media root.
    """
    pure = PurePosixPath(relative)
    if pure.is_absolute() or PurePath(relative).is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"{relative!r} is not a path inside the media root")
    return media_root.joinpath(*pure.parts)


def write_files(media_root: Path, files: Iterable[tuple[str, bytes]], written: list[Path]) -> None:
    """Write each (relative path, bytes) atomically, then sync every folder that received one.

    Each path is appended to ``written`` before its write starts, so that a caller cleaning up
    after a failure (``discard``) also finds a half-written temporary file.

    Raises:
        OSError: As the file system refused (the caller turns it into ``StorageError``).
    """
    folders: dict[Path, None] = {}
    for relative, data in files:
        path = media_root / relative
        written.append(path)
        if path.parent not in folders:
            _make_dirs_durable(path.parent)
        folders[path.parent] = None
        write_atomic(path, data)
    for folder in folders:
        fsync_dir(folder)  # the renames themselves survive a power loss


def discard(written: Iterable[Path]) -> None:
    """Remove files whose rows were not committed, with ``write_atomic``'s temporary files.

    Frees the space when the disk filled up; a file that cannot be removed is logged and left
    (an orphan file is harmless).
    """
    for path in written:
        for leftover in (path, path.with_name(path.name + ".part")):
            try:
                leftover.unlink(missing_ok=True)
            except OSError as exc:
                _log.warning("orphan media file %s left behind: %s", leftover, exc)


def load_heatmap(path: Path, part_id: str) -> np.ndarray | None:
    """The heatmap stored at ``path`` (uint8, H x W), or None when it is missing or unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        _log.warning("heatmap of part %s cannot be read: %s", part_id, exc)
        return None
    # imdecode from bytes rather than imread: imread cannot open non-ASCII paths on Windows.
    heatmap = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if heatmap is None or heatmap.dtype != np.uint8 or heatmap.ndim != 2:
        _log.warning("heatmap of part %s at %s is not an 8-bit grayscale PNG", part_id, path)
        return None
    return np.asarray(heatmap)


def remove_empty_folders(folders: Iterable[Path], media_root: Path) -> None:
    """Remove each folder and its parents up to the media root, as long as they are empty."""
    root = media_root.resolve()
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        current = folder
        while current.resolve() != root and root in current.resolve().parents:
            try:
                current.rmdir()  # only when empty
            except OSError:
                break
            current = current.parent


def _make_dirs_durable(folder: Path) -> None:
    """Create ``folder`` and its missing parents, syncing each new entry into its parent."""
    missing = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)
