"""TIFF: 32-bit float images decode with a stated scale, and a TIFF cut short waits, never decodes."""

from __future__ import annotations

import itertools
import struct

import cv2
import numpy as np
import pytest

from core.imaging.decode import DecodeError, TruncatedError, decode_image


def _tiff(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".tiff", img)
    assert ok
    return buf.tobytes()


def _strip_tiff(img: np.ndarray, rows_per_strip: int = 8, orientation: int | None = None) -> bytes:
    """An uncompressed gray TIFF (8-bit or 32-bit float) with its directory first, strips after.

    The order a streaming writer uses: header and directory, then pixels. Cut anywhere in the
    pixels and the header still reads, which is exactly the case a completeness check must catch.
    """
    height, width = img.shape
    floating = img.dtype == np.float32
    strips = [img[y : y + rows_per_strip].tobytes() for y in range(0, height, rows_per_strip)]
    n = len(strips)

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        if kind == 3 and count == 1:
            return struct.pack("<HHIHH", tag, kind, count, value, 0)
        return struct.pack("<HHII", tag, kind, count, value)

    def directory(offsets: list[int], offsets_at: int, counts_at: int) -> list[bytes]:
        tags = [
            entry(256, 4, 1, width),
            entry(257, 4, 1, height),
            entry(258, 3, 1, 32 if floating else 8),  # BitsPerSample
            entry(259, 3, 1, 1),  # no compression
            entry(262, 3, 1, 1),  # BlackIsZero
            entry(273, 4, n, offsets_at) if n > 1 else entry(273, 4, 1, offsets[0]),
        ]
        if orientation is not None:
            tags.append(entry(274, 3, 1, orientation))
        tags += [
            entry(277, 3, 1, 1),  # SamplesPerPixel
            entry(278, 4, 1, rows_per_strip),
            entry(279, 4, n, counts_at) if n > 1 else entry(279, 4, 1, len(strips[0])),
        ]
        if floating:
            tags.append(entry(339, 3, 1, 3))  # SampleFormat: IEEE float
        return tags

    entries = len(directory([0], 0, 0))
    arrays_at = 8 + 2 + 12 * entries + 4
    offsets_at, counts_at = arrays_at, arrays_at + 4 * n
    offsets = list(itertools.accumulate([counts_at + 4 * n] + [len(s) for s in strips[:-1]]))
    ifd = (
        struct.pack("<H", entries)
        + b"".join(directory(offsets, offsets_at, counts_at))
        + struct.pack("<I", 0)
    )
    arrays = struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *map(len, strips))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + arrays + b"".join(strips)


def _gradient(height: int = 48, width: int = 64) -> np.ndarray:
    return np.linspace(0.0, 1.0, height * width, dtype=np.float32).reshape(height, width)


def test_float32_tiff_in_unit_range_scales_to_0_255() -> None:
    img = _gradient()
    out = decode_image(_tiff(img))
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out, np.round(img * 255).astype(np.uint8))


def test_float32_colour_tiff_matches_the_8_bit_conversion() -> None:
    img = np.dstack([_gradient(), _gradient()[::-1], np.full((48, 64), 0.25, np.float32)])
    expected = cv2.cvtColor(np.round(img * 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(decode_image(_tiff(img)), expected)


def test_float_tiff_outside_the_unit_range_is_refused_with_its_range() -> None:
    # A stretch to the image's own min..max (the old behaviour) would show a dark part as bright.
    with pytest.raises(DecodeError, match=r"float TIFF with values in \[0, 300\]; only \[0, 1\]"):
        decode_image(_tiff(_gradient() * 300))
    img = _gradient()
    img[3, 3] = np.nan
    with pytest.raises(DecodeError, match="NaN or infinite"):
        decode_image(_tiff(img))


def test_streamed_tiff_decodes_whole() -> None:
    img = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)
    data = _strip_tiff(img)
    assert np.array_equal(decode_image(data), img)


def test_tiff_cut_in_its_pixels_is_truncated_so_a_hot_folder_waits() -> None:
    img = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)
    data = _strip_tiff(img)
    for cut in (len(data) - 1, len(data) - 200, len(data) // 2):
        # Before the check OpenCV decoded these into a partial picture.
        with pytest.raises(TruncatedError, match=r"truncated TIFF \(strip \d+ ends at byte \d+ of \d+\)"):
            decode_image(data[:cut])


def test_tiff_written_by_opencv_cut_short_is_truncated() -> None:
    data = _tiff((np.arange(64 * 64) % 253).astype(np.uint8).reshape(64, 64))
    decode_image(data)
    for cut in (len(data) - 4, len(data) // 2, 12):
        with pytest.raises(TruncatedError, match="truncated TIFF"):
            decode_image(data[:cut])


def test_float_tiff_orientation_is_applied_once_like_8_bit() -> None:
    # OpenCV's TIFF reader applies the Orientation tag itself, even with IMREAD_UNCHANGED.
    img = np.zeros((40, 24), np.float32)
    img[:, :4] = 1.0  # a white band on the left
    upright = cv2.rotate((img * 255).astype(np.uint8), cv2.ROTATE_90_CLOCKWISE)
    as_float = decode_image(_strip_tiff(img, orientation=6))
    as_8_bit = decode_image(_strip_tiff((img * 255).astype(np.uint8), orientation=6))
    assert np.array_equal(as_8_bit, upright)
    assert np.array_equal(as_float, upright)


def test_strip_table_claiming_more_entries_than_the_file_holds_is_refused_cheaply() -> None:
    # 2**31 offsets would be 8 GiB: refused from the length check, nothing of that size is built.
    data = bytearray(_strip_tiff((np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)))
    at = data.index(struct.pack("<HH", 273, 4))
    data[at + 4 : at + 8] = struct.pack("<I", 2**31)
    with pytest.raises(TruncatedError, match="truncated TIFF"):
        decode_image(bytes(data))
