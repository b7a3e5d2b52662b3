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


def test_header_claiming_more_than_the_budget_is_refused_before_decoding() -> None:
    # 7000 x 7000 is under the pixel limit; 16-bit RGBA makes it 392 MB decoded, 784 MB to decode
    # (OpenCV holds two copies). It peaked at 2.6 GB before the budget.
    assert MAX_PIXELS >= 7000 * 7000
    with pytest.raises(DecodeError, match=r"7000 x 7000 x 4 channels x 2 bytes = 392,000,000 bytes decoded"):
        decode_image(_png_header_only(7000, 7000, 16, 6))
    # The same header as 8-bit gray is 49 MB: it passes the budget and fails later, as corrupt.
    with pytest.raises(DecodeError, match="corrupt PNG"):
        decode_image(_png_header_only(7000, 7000, 8, 0))


def test_default_budget_admits_every_8_bit_image_under_the_pixel_limit() -> None:
    side = int(MAX_PIXELS**0.5)
    for colour_type in (0, 2, 6):  # gray, RGB, RGBA
        with pytest.raises(DecodeError, match="corrupt PNG"):  # refused later, not by the budget
            decode_image(_png_header_only(side, side, 8, colour_type))
    assert MAX_DECODE_BYTES <= 512 * 2**20


def test_budget_through_the_parameter() -> None:
    img = np.zeros((100, 100, 3), np.uint16)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    # 100 x 100 x 3 x 2 = 60,000 bytes decoded, twice that to decode.
    assert decode_image(buf.tobytes(), max_decode_bytes=120_000).shape == (100, 100)
    with pytest.raises(DecodeError, match="over the decode memory limit of 119,999 bytes"):
        decode_image(buf.tobytes(), max_decode_bytes=119_999)


def test_progressive_jpeg_coefficients_count_against_the_budget() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    sampling = [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    baseline = cv2.imencode(".jpg", img, sampling)[1].tobytes()
    progressive = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, *sampling])[1].tobytes()
    # 30,000 bytes decoded; a progressive decoder also keeps 60,000 bytes of coefficients.
    assert decode_image(baseline, max_decode_bytes=60_000).shape == (100, 100)
    with pytest.raises(DecodeError, match="about 90,000 bytes to decode"):
        decode_image(progressive, max_decode_bytes=60_000)
    assert decode_image(progressive, max_decode_bytes=90_000).shape == (100, 100)


def test_gray_files_are_read_as_gray_with_the_same_pixels() -> None:
    # One channel instead of three: a third of the memory, and not one pixel different.
    rng = np.random.default_rng(1)
    for img, ext in [
        (rng.integers(0, 255, (64, 80), dtype=np.uint8), ".png"),
        (rng.integers(0, 65535, (64, 80), dtype=np.uint16), ".png"),
        (cv2.resize(rng.integers(0, 255, (8, 10), dtype=np.uint8), (80, 64)), ".jpg"),
    ]:
        data = cv2.imencode(ext, img)[1].tobytes()
        colour = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
        if colour.dtype == np.uint16:
            colour = (colour >> 8).astype(np.uint8)
        assert np.array_equal(decode_image(data), cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
        decoded = img.shape[0] * img.shape[1] * img.itemsize
        assert decode_image(data, max_decode_bytes=2 * decoded).shape == img.shape


# Decodes one file in a fresh process and reports the peak resident memory the decode added. The
# kernel's high-water mark is reset first (clear_refs 5), so nothing before the call counts.
_PEAK = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from core.imaging.decode import decode_image

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    data = Path(sys.argv[1]).read_bytes()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status("VmRSS")
    out = decode_image(data, max_decode_bytes=int(sys.argv[2]))
    added = status("VmHWM") - before
    print(json.dumps({"added": added, "shape": list(out.shape), "corner": int(out[-1, -1])}))
    """
)


def test_sixteen_bit_rgba_png_peak_stays_within_the_budget(tmp_path: Path) -> None:
    # 2500 x 2500 x 4 x 2 = 50 MB decoded, so 100 MB to decode by the budget's estimate. Before the
    # row-band conversion the float copies took the peak to ~2.6 times that.
    n = 2500
    img = np.empty((n, n, 4), np.uint16)
    ramp = np.linspace(0, 65535, n).astype(np.uint16)
    img[..., 0], img[..., 1], img[..., 2], img[..., 3] = ramp[None, :], ramp[:, None], 30000, 65535
    img[: n // 2, :, 3] = 20000
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), img)
    budget = 2 * n * n * 4 * 2
    run = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(budget)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["shape"] == [n, n] and result["corner"] > 0
    # The estimate holds up to the allocator's slack (measured 0.95-1.07 of it; 2.4 before the fix):
    # RSS moves with what else the process and the machine do, so the margin is wide on purpose.
    assert result["added"] <= budget * 1.25, result
