"""Decode memory is bounded: a budget in bytes from the header, and conversions in row bands.

Peak memory is measured as the resident set (``ru_maxrss``) of a fresh subprocess: OpenCV's
buffers are invisible to tracemalloc.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.imaging.decode import MAX_DECODE_BYTES, MAX_PIXELS, DecodeError, decode_image

ROOT = Path(__file__).resolve().parents[2]


def _png_header_only(width: int, height: int, depth: int, colour_type: int) -> bytes:
    """A PNG whose header claims a size; its pixel data is a token, never reached."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def test_header_claiming_more_bytes_than_the_budget_is_refused_before_decoding() -> None:
    # 7000 x 7000 is under the pixel limit; 16-bit RGBA makes it 392 MB decoded.
    data = _png_header_only(7000, 7000, 16, 6)
    assert MAX_PIXELS >= 7000 * 7000
    with pytest.raises(DecodeError, match=r"7000 x 7000 x 4 channels x 2 bytes = 392,000,000 bytes"):
        decode_image(data, max_decode_bytes=256 * 2**20)
    # The same header as 8-bit gray is 49 MB: it passes the budget and fails later, as corrupt.
    with pytest.raises(DecodeError, match="corrupt PNG"):
        decode_image(_png_header_only(7000, 7000, 8, 0), max_decode_bytes=256 * 2**20)


def test_default_budget_admits_every_8_bit_colour_image_under_the_pixel_limit() -> None:
    side = int(MAX_PIXELS**0.5)
    with pytest.raises(DecodeError, match="corrupt PNG"):  # refused later, not by the budget
        decode_image(_png_header_only(side, side, 8, 6))
    assert MAX_DECODE_BYTES < 512 * 2**20


def test_small_budget_through_the_parameter() -> None:
    img = np.zeros((100, 100, 3), np.uint16)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    assert decode_image(buf.tobytes(), max_decode_bytes=60_000).shape == (100, 100)
    with pytest.raises(DecodeError, match="decode memory limit of 59,999 bytes"):
        decode_image(buf.tobytes(), max_decode_bytes=59_999)


_PEAK = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, cv2
    from core.imaging.decode import decode_image
    n = int(sys.argv[1])
    img = np.empty((n, n, 4), np.uint16)
    ramp = np.linspace(0, 65535, n).astype(np.uint16)
    img[..., 0] = ramp[None, :]
    img[..., 1] = ramp[:, None]
    img[..., 2] = 30000
    img[..., 3] = 65535
    img[: n // 2, :, 3] = 20000
    data = cv2.imencode(".png", img)[1].tobytes()
    del img
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = decode_image(data)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"added": after - before, "shape": list(out.shape), "corner": int(out[-1, -1])}))
    """
)


def test_sixteen_bit_rgba_png_peak_stays_near_its_decoded_size() -> None:
    # 2500 x 2500 x 4 x 2 bytes = 50 MB decoded. Before the band-wise conversion the float copies
    # took the peak to ~4.8x that; now it is the decoded buffer, the result and a few bands.
    n = 2500
    run = subprocess.run(
        [sys.executable, "-c", _PEAK, str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["shape"] == [n, n]
    assert result["corner"] > 0
    decoded = n * n * 4 * 2
    assert result["added"] < decoded + n * n + 40 * 2**20, result
