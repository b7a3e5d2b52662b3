"""The one decode path for every image: files, the hot folder, training data and cameras.

Whatever arrives becomes a uint8 grayscale H x W array or a ``DecodeError`` whose message is the
reason logged for a not-inspected part. Checks happen before decoding where they can (empty or
oversized files, unknown formats, decompression bombs from the header, truncated files) and after
it where OpenCV is lenient (a truncated JPEG decodes to a partly grey image without complaint, so
its end-of-image marker is checked before decoding).

Conversions, the same for every source so training, evaluation and the line see the same pixels:

- 16-bit samples keep their top 8 bits (``value >> 8``).
- Colour (and palette) images are converted with OpenCV's BGR-to-gray weights.
- Transparent pixels are composited on black, the station's background.
- The EXIF orientation of JPEGs (and of PNGs with an ``eXIf`` chunk) is applied.
- Camera frames go through :func:`frame_to_gray`, which is the same conversion.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000  # refuse anything larger before decoding it (decompression bombs)
MAX_FILE_BYTES = 256 * 2**20  # refuse larger files before reading them into memory
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/DAC/JPG.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class DecodeError(ValueError):
    """An input that cannot be inspected; the message is the reason shown and logged."""


class TruncatedError(DecodeError):
    """The file ends early: a broken file, or one still being written (a hot folder waits once)."""


def sniff_format(data: bytes) -> str:
    """The format from the file's signature (never from its name): png, jpeg, bmp or tiff."""
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"%PDF"):
        raise DecodeError("not an image (a PDF document)")
    raise DecodeError("not an image (unknown file signature)")


# ------------------------------------------------------------------------------------ headers


class _Header:
    """What the header says, read without decoding any pixel."""

    __slots__ = ("width", "height", "alpha", "orientation")

    def __init__(self, width: int, height: int, *, alpha: bool = False, orientation: int = 1) -> None:
        self.width = width
        self.height = height
        self.alpha = alpha  # PNG with an alpha channel or a transparency chunk
        self.orientation = orientation  # EXIF orientation 1..8 (PNG eXIf only; OpenCV does JPEG's)


def _png_header(data: bytes) -> _Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise TruncatedError("truncated PNG (no header)")
    width, height, _depth, colour_type = struct.unpack(">IIBB", data[16:26])
    alpha = colour_type in (4, 6)
    orientation = 1
    # Walk the chunks before the image data for transparency and orientation.
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            break
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tRNS":
            alpha = True
        elif kind == b"eXIf":
            orientation = _tiff_orientation(body)
        pos += 12 + length
    return _Header(width, height, alpha=alpha, orientation=orientation)


def _jpeg_header(data: bytes) -> _Header:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return _Header(width, height)
        i += 2 + length
    raise TruncatedError("truncated JPEG (no frame header)")


def _bmp_header(data: bytes) -> _Header:
    if len(data) < 26:
        raise TruncatedError("truncated BMP (no header)")
    declared_size, info_size = struct.unpack("<I8xI", data[2:18])
    if info_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    if declared_size and len(data) < declared_size:
        raise TruncatedError(f"truncated BMP ({len(data)} of {declared_size} bytes)")
    return _Header(abs(width), abs(height))  # a negative height means rows top-down


def _tiff_header(data: bytes) -> _Header:
    endian = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(endian + "I", data[4:8])
        (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
        size: dict[int, int] = {}
        for k in range(count):
            entry = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            tag, kind = struct.unpack(endian + "HH", entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
                fmt = "H" if kind == 3 else "I"
                size[tag] = struct.unpack(endian + fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    except struct.error as exc:
        raise TruncatedError("truncated TIFF (no complete header)") from exc
    if 256 not in size or 257 not in size:
        raise DecodeError("corrupt TIFF (no image size in the header)")
    return _Header(size[256], size[257])


def _tiff_orientation(exif: bytes) -> int:
    """The Orientation tag (274) of an EXIF/TIFF block; 1 when absent or unreadable."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    if exif[:2] not in (b"II", b"MM"):
        return 1
    endian = "<" if exif[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(endian + "I", exif[4:8])
        (count,) = struct.unpack(endian + "H", exif[ifd : ifd + 2])
        for k in range(count):
            tag, _kind, _n, value = struct.unpack(endian + "HHIH", exif[ifd + 2 + 12 * k : ifd + 12 + 12 * k])
            if tag == 274:
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def _header(data: bytes, fmt: str) -> _Header:
    return {"png": _png_header, "jpeg": _jpeg_header, "bmp": _bmp_header, "tiff": _tiff_header}[fmt](data)


def _check_complete(data: bytes, fmt: str) -> None:
    # Some writers pad files with zeros (pre-allocated buffers); the end marker precedes them.
    tail = data[-4096:].rstrip(b"\x00")
    if fmt == "png" and b"IEND" not in tail[-32:]:
        raise TruncatedError("truncated PNG (no IEND chunk)")
    if fmt == "jpeg" and b"\xff\xd9" not in tail[-32:]:
        raise TruncatedError("truncated JPEG (no end-of-image marker)")


# ------------------------------------------------------------------------------------ pixels


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image stored with EXIF ``orientation`` upright (1 = already upright)."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.flip(cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE), 1)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE), 1)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def _to_gray8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        # Floating-point data (32-bit TIFF): its own range stretched to 0..255.
        values = img.astype(np.float32)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        img = ((values - low) * scale).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 4:
        # Composite on black, which is the station's background.
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3].astype(np.float32) * alpha).astype(np.uint8)
    elif img.shape[2] == 2:  # gray + alpha
        alpha = img[:, :, 1].astype(np.float32) / 255.0
        return (img[:, :, 0].astype(np.float32) * alpha).astype(np.uint8)
    if img.shape[2] == 1:
        return np.ascontiguousarray(img[:, :, 0])
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def frame_to_gray(frame: np.ndarray) -> np.ndarray:
    """A camera frame (BGR, BGRA, mono; 8 or 16 bit) -> uint8 grayscale, as files are converted.

    Raises:
        DecodeError: The frame is empty or not an image array.
    """
    if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.ndim not in (2, 3):
        raise DecodeError("empty or malformed camera frame")
    if frame.ndim == 3 and frame.shape[2] not in (1, 2, 3, 4):
        raise DecodeError(f"camera frame with {frame.shape[2]} channels")
    return _to_gray8(frame)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> uint8 grayscale image, or ``DecodeError`` with the reason.

    Args:
        data: The whole file.
        max_pixels: Refuse images with more pixels than this, from the header alone.

    Raises:
        DecodeError: Empty, not an image, truncated, too large or corrupt; the message says which.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise DecodeError(f"refused: {len(data):,} bytes exceeds the file size limit of {MAX_FILE_BYTES:,}")
    fmt = sniff_format(data)
    header = _header(data, fmt)
    if header.width == 0 or header.height == 0:
        raise DecodeError(f"invalid image size {header.width} x {header.height}")
    if header.width * header.height > max_pixels:
        raise DecodeError(
            f"refused: {header.width} x {header.height} pixels exceeds the limit of {max_pixels:,}"
        )
    _check_complete(data, fmt)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        if header.alpha:
            # Only IMREAD_UNCHANGED keeps the alpha channel; it skips the EXIF orientation, which
            # is applied here instead.
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            if img is not None:
                img = _apply_orientation(img, header.orientation)
        else:
            # IMREAD_ANYDEPTH keeps 16-bit data; IMREAD_COLOR applies the EXIF orientation and
            # expands palettes.
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        raise DecodeError(f"corrupt {fmt.upper()} (the decoder failed: {exc.err})") from exc
    if img is None or img.size == 0:
        raise DecodeError(f"corrupt {fmt.upper()} (the decoder could not read it)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise DecodeError(f"refused: {img.shape[1]} x {img.shape[0]} pixels exceeds the limit")
    return _to_gray8(img)


def read_image(path: Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode a file; I/O failures become ``DecodeError`` too."""
    return decode_image(read_file(path), max_pixels=max_pixels)


def read_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A file's bytes, refusing files over ``max_bytes`` before reading them.

    Raises:
        DecodeError: The file cannot be read or is too large.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise DecodeError(f"refused: {size:,} bytes exceeds the file size limit of {max_bytes:,}")
            return fh.read()
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
