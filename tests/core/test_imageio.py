"""The one decode path: every broken input becomes a DecodeError with a reason."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.imaging.decode import DecodeError, decode_image, read_image


def _disc(size: int = 64) -> np.ndarray:
    img = np.zeros((size, size), np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 3, 200, -1)
    return img


def _encode(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_png_and_jpeg_decode_to_gray() -> None:
    img = _disc()
    assert np.array_equal(decode_image(_encode(".png", img)), img)
    jpeg = decode_image(_encode(".jpg", img))
    assert jpeg.shape == img.shape and jpeg.dtype == np.uint8
    assert np.abs(jpeg.astype(int) - img.astype(int)).mean() < 3


def test_sixteen_bit_and_rgba_png() -> None:
    img16 = _disc().astype(np.uint16) * 257
    out = decode_image(_encode(".png", img16))
    assert out.dtype == np.uint8 and out.max() == 200
    rgba = np.dstack([cv2.cvtColor(_disc(), cv2.COLOR_GRAY2BGR), np.full((64, 64), 255, np.uint8)])
    rgba[:, :32, 3] = 0  # transparent half composites on black
    out = decode_image(_encode(".png", rgba))
    assert out.ndim == 2 and out[:, :32].max() == 0 and out[32, 40] > 150


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "not an image"),
    ],
)
def test_non_images(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_image(data)


def test_truncated_jpeg_and_png_are_refused() -> None:
    jpeg = _encode(".jpg", _disc(256))
    with pytest.raises(DecodeError, match="truncated JPEG"):
        decode_image(jpeg[: len(jpeg) // 2])
    png = _encode(".png", _disc(256))
    with pytest.raises(DecodeError, match="truncated PNG"):
        decode_image(png[: len(png) - 20])


def test_decompression_bomb_refused_from_the_header() -> None:
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    with pytest.raises(DecodeError, match="60000 x 60000"):
        decode_image(data + b"\x00" * 64 + b"IEND\xaeB`\x82")


def test_read_image_unicode_name_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pièce-Ω.png"
    path.write_bytes(_encode(".png", _disc()))
    assert read_image(path).shape == (64, 64)
    with pytest.raises(DecodeError, match="cannot read file"):
        read_image(tmp_path / "absent.png")
