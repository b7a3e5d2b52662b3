"""The one decode path on the inputs a line actually produces: palettes, alpha, EXIF, odd headers."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "sources"))
from source_helpers import make_png, png_chunk  # noqa: E402

from core.imaging.decode import (  # noqa: E402
    DecodeError,
    TruncatedError,
    decode_image,
    frame_to_gray,
    read_file,
)


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 EXIF segment whose only tag is Orientation."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def _band_image() -> np.ndarray:
    img = np.zeros((40, 80), np.uint8)
    img[:, :20] = 255  # a white band on the left of a wide image
    return img


def test_palette_png_matches_its_rgb_equivalent() -> None:
    palette = bytes([0, 0, 0, 255, 0, 0, 0, 0, 255])  # black, red, blue (RGB)
    rows = [bytes([0, 1, 2, 1])] * 4
    data = make_png(4, 4, 3, rows, extra=png_chunk(b"PLTE", palette))
    gray = decode_image(data)
    rgb = np.array([[(0, 0, 0), (255, 0, 0), (0, 0, 255), (255, 0, 0)]] * 4, np.uint8)
    expected = cv2.cvtColor(rgb[:, :, ::-1], cv2.COLOR_BGR2GRAY)
    assert gray.dtype == np.uint8 and gray.shape == (4, 4)
    assert np.array_equal(gray, expected)


def test_palette_png_with_transparency_composites_on_black() -> None:
    palette = bytes([255, 255, 255] * 3)
    transparency = png_chunk(b"tRNS", bytes([0, 255, 128]))  # entry 0 invisible, 2 half
    data = make_png(3, 1, 3, [bytes([0, 1, 2])], extra=png_chunk(b"PLTE", palette) + transparency)
    gray = decode_image(data)
    assert gray[0, 0] == 0 and gray[0, 1] == 255 and 120 <= gray[0, 2] <= 130


def test_gray_alpha_and_sixteen_bit_rgba() -> None:
    data = make_png(2, 1, 4, [bytes([200, 255, 200, 0])])  # gray + alpha
    assert decode_image(data).tolist() == [[200, 0]]
    rgba16 = np.zeros((2, 2, 4), np.uint16)
    rgba16[..., :3] = 40000
    rgba16[0, :, 3] = 65535
    ok, buf = cv2.imencode(".png", rgba16)
    assert ok
    gray = decode_image(buf.tobytes())
    assert gray.dtype == np.uint8 and gray[0, 0] == 40000 >> 8 and gray[1, 0] == 0


@pytest.mark.parametrize(
    ("orientation", "upright_shape"), [(1, (40, 80)), (3, (40, 80)), (6, (80, 40)), (8, (80, 40))]
)
def test_exif_orientation_is_applied(orientation: int, upright_shape: tuple[int, int]) -> None:
    img = _band_image()
    gray = decode_image(_with_exif_orientation(_jpeg(img), orientation))
    assert gray.shape == upright_shape
    expected = {
        1: img,
        3: cv2.rotate(img, cv2.ROTATE_180),
        6: cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE),
        8: cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }[orientation]
    assert np.abs(gray.astype(int) - expected.astype(int)).mean() < 8


def test_png_exif_orientation_applies_to_alpha_images_too() -> None:
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    exif = png_chunk(b"eXIf", b"MM\x00\x2a" + struct.pack(">I", 8) + ifd)
    rows = [bytes([255, 255, 0, 255] + [0, 0, 0, 255] * 3)] * 2  # RGBA, first pixel white
    gray = decode_image(make_png(4, 2, 6, rows, extra=exif))
    assert gray.shape == (4, 2)  # rotated a quarter turn clockwise
    assert gray[0, 1] > 200 and gray[3, 0] == 0


def test_truncated_files_say_so_and_are_a_decode_error() -> None:
    img = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    jpeg = _jpeg(img)
    for cut in (len(jpeg) // 2, len(jpeg) - 3, 40):
        with pytest.raises(TruncatedError, match="truncated JPEG"):
            decode_image(jpeg[:cut])
    ok, bmp = cv2.imencode(".bmp", img)
    with pytest.raises(TruncatedError, match="truncated BMP"):
        decode_image(bmp.tobytes()[:-100])
    assert issubclass(TruncatedError, DecodeError)


def test_zero_padding_after_the_end_marker_is_not_truncation() -> None:
    img = _band_image()
    assert decode_image(_jpeg(img) + b"\x00" * 512).shape == img.shape


def test_bombs_refused_from_bmp_and_tiff_headers_without_decoding() -> None:
    bmp = b"BM" + struct.pack("<I4xI", 0, 54) + struct.pack("<Iii", 40, 60_000, 60_000) + b"\x00" * 28
    with pytest.raises(DecodeError, match="60000 x 60000"):
        decode_image(bmp)
    entries = struct.pack("<HHII", 256, 4, 1, 60_000) + struct.pack("<HHII", 257, 4, 1, 60_000)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + b"\x00" * 8
    with pytest.raises(DecodeError, match="60000 x 60000"):
        decode_image(tiff)


def test_oversized_file_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x00" * 4096)
    with pytest.raises(DecodeError, match="file size limit"):
        read_file(path, max_bytes=1024)


def test_camera_frames_use_the_same_conversion_as_files() -> None:
    bgr = np.dstack([np.full((4, 4), v, np.uint8) for v in (10, 120, 250)])
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    assert np.array_equal(frame_to_gray(bgr), decode_image(png.tobytes()))
    mono16 = np.full((3, 3), 0x8123, np.uint16)
    assert frame_to_gray(mono16).tolist() == [[0x81] * 3] * 3
    with pytest.raises(DecodeError, match="empty"):
        frame_to_gray(np.zeros((0, 0), np.uint8))
