"""The one decode path for every image: files, the hot folder, training data and cameras.

Whatever arrives becomes a uint8 grayscale H x W array or a ``DecodeError`` whose message is the
reason logged for a not-inspected part. Checks happen before decoding where they can (empty
files, unknown formats, decompression bombs from the header) and after it where OpenCV is lenient
(a truncated JPEG decodes to a partly grey image without complaint).
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000  # refuse anything larger before decoding it (decompression bombs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DecodeError(ValueError):
    """An input that cannot be inspected; the message is the reason shown and logged."""


def sniff_format(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    raise DecodeError("not an image (unknown file signature)")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise DecodeError("truncated PNG (no header)")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise DecodeError("truncated JPEG (no frame header)")


def _check_complete(data: bytes, fmt: str) -> None:
    if fmt == "png" and b"IEND" not in data[-32:]:
        raise DecodeError("truncated PNG (no IEND chunk)")
    if fmt == "jpeg" and b"\xff\xd9" not in data[-32:]:
        raise DecodeError("truncated JPEG (no end-of-image marker)")


def _to_gray8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 4:
        # Composite on black, which is the station's background.
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3].astype(np.float32) * alpha).astype(np.uint8)
    if img.shape[2] == 1:
        return img[:, :, 0]
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> uint8 grayscale image, or ``DecodeError`` with the reason."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt in ("png", "jpeg"):
        width, height = _png_size(data) if fmt == "png" else _jpeg_size(data)
        if width == 0 or height == 0:
            raise DecodeError(f"invalid image size {width} x {height}")
        if width * height > max_pixels:
            raise DecodeError(f"refused: {width} x {height} pixels exceeds the limit of {max_pixels:,}")
        _check_complete(data, fmt)
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_ANYDEPTH keeps 16-bit data; IMREAD_COLOR applies the EXIF orientation.
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if fmt == "png" and img is not None:
        unchanged = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if unchanged is not None and unchanged.ndim == 3 and unchanged.shape[2] == 4:
            img = unchanged
    if img is None:
        raise DecodeError(f"corrupt {fmt.upper()} (the decoder could not read it)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise DecodeError(f"refused: {img.shape[1]} x {img.shape[0]} pixels exceeds the limit")
    return _to_gray8(img)


def read_image(path: Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode a file; I/O failures become ``DecodeError`` too."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    return decode_image(data, max_pixels=max_pixels)
