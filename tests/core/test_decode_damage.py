"""A damaged JPEG is never a picture of the part: it is refused, never given a verdict.

libjpeg only *warns* about corrupt entropy-coded data ("Corrupt JPEG data: premature end of data
segment") and fills the rest with grey; OpenCV prints the warning to stderr and returns the image.
The decode path must turn that warning into a ``DecodeError``, and leave every valid JPEG's pixels
exactly as OpenCV decodes them.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.imaging.decode import DecodeError, TruncatedError, decode_image

CASTING = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "casting" / "train"


def _casting_photos(count: int) -> list[Path]:
    photos = sorted(CASTING.rglob("*.jpeg"))
    if not photos:
        pytest.skip(f"the casting photographs are not at {CASTING}")
    step = max(1, len(photos) // count)
    return photos[::step][:count]


def _photo_like(size: int, seed: int = 0) -> np.ndarray:
    """A colour picture with texture everywhere, so every region has entropy-coded data."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8), (size, size))
    cv2.circle(img, (size // 2, size // 2), size // 3, (90, 160, 200), -1)
    noise = rng.integers(0, 24, img.shape, dtype=np.uint8)
    return cv2.add(img, noise)


def _jpeg(img: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, list(params))
    assert ok
    return buf.tobytes()


def _reference(data: bytes) -> np.ndarray:
    """What OpenCV itself decodes, converted as the station converts: the pixels must not move."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _scan_start(data: bytes) -> int:
    """Offset of the first entropy-coded byte (just after the start-of-scan header)."""
    sos = data.index(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    return sos + 2 + length


def _cut_with_end_marker(data: bytes, fraction: float) -> bytes:
    start = _scan_start(data)
    return data[: start + int((len(data) - start) * fraction)] + b"\xff\xd9"


def _zero_middle(data: bytes, at: float, length: int) -> bytes:
    start = _scan_start(data)
    pos = start + int((len(data) - 2 - start) * at)
    damaged = bytearray(data)
    length = min(length, len(data) - 2 - pos)  # the end-of-image marker stays
    damaged[pos : pos + length] = bytes(length)
    return bytes(damaged)


def _damaged(data: bytes) -> list[tuple[str, bytes]]:
    """Damage libjpeg always reports: a cut scan, and a zeroed stretch too long to resynchronise."""
    cases = [(f"cut at {f:.0%} + EOI", _cut_with_end_marker(data, f)) for f in (0.1, 0.5, 0.9)]
    cases += [(f"zeroed 2000 bytes at {a:.0%}", _zero_middle(data, a, 2000)) for a in (0.3, 0.6)]
    return cases


# Decodes each file with OpenCV and reports, per file, whether libjpeg printed a warning. Run in a
# subprocess because libjpeg writes to the C-level stderr; the file markers go through fd 2 too,
# so they interleave in order with libjpeg's messages.
_LIBJPEG_WARNS = textwrap.dedent(
    """
    import os, sys
    import cv2, numpy as np
    for path in sys.argv[1:]:
        os.write(2, ("@@ " + path + chr(10)).encode())
        cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    """
)


def _libjpeg_warnings(paths: list[Path]) -> dict[Path, str]:
    run = subprocess.run(
        [sys.executable, "-c", _LIBJPEG_WARNS, *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    warned: dict[Path, str] = {}
    current: Path | None = None
    for line in run.stderr.splitlines():
        if line.startswith("@@ "):
            current = Path(line[3:])
        elif current is not None and ("Corrupt JPEG data" in line or "Premature end" in line):
            warned.setdefault(current, line)
    return warned


@pytest.mark.parametrize("progressive", [False, True])
def test_damaged_jpegs_are_refused_as_corrupt(progressive: bool) -> None:
    data = _jpeg(_photo_like(512), cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive))
    for name, damaged in _damaged(data):
        # Before the fix each of these decoded to an image (grey where the data was missing).
        with pytest.raises(DecodeError, match="corrupt JPEG data: ") as info:
            decode_image(damaged)
        # Corrupt, not truncated: a hot folder must not wait for more bytes that never come.
        assert not isinstance(info.value, TruncatedError), name


def test_damaged_casting_photographs_are_refused() -> None:
    for path in _casting_photos(4):
        for name, damaged in _damaged(path.read_bytes()):
            with pytest.raises(DecodeError, match="corrupt JPEG data: "):
                decode_image(damaged)
            assert name


def test_whatever_libjpeg_warns_about_is_refused(tmp_path: Path) -> None:
    """The invariant, against OpenCV's own libjpeg as the judge, over many kinds of damage."""
    sources = [_jpeg(_photo_like(300, seed=s), cv2.IMWRITE_JPEG_PROGRESSIVE, s % 2) for s in range(2)]
    sources += [p.read_bytes() for p in _casting_photos(2)]
    paths: list[Path] = []
    for k, data in enumerate(sources):
        variants = [_cut_with_end_marker(data, f) for f in (0.05, 0.3, 0.7, 0.98)]
        variants += [_zero_middle(data, a, n) for a in (0.1, 0.3, 0.5, 0.7, 0.9) for n in (1, 16, 128, 1000)]
        for v, damaged in enumerate(variants):
            paths.append(tmp_path / f"{k}-{v}.jpg")
            paths[-1].write_bytes(damaged)
    warned = _libjpeg_warnings(paths)
    assert len(warned) > len(paths) // 2  # the oracle works: most of this damage is reported
    for path in paths:
        data = path.read_bytes()
        if path in warned:
            with pytest.raises(DecodeError, match="corrupt JPEG data: "):
                decode_image(data)
        else:
            # Damage libjpeg resynchronises over without a word (no JPEG checksum exists) is
            # invisible to any decoder; such a file still decodes like OpenCV decodes it.
            assert np.array_equal(decode_image(data), _reference(data)), path.name


@pytest.mark.parametrize(
    "params",
    [
        (),
        (cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        (cv2.IMWRITE_JPEG_OPTIMIZE, 1),
        (cv2.IMWRITE_JPEG_RST_INTERVAL, 4),
        (
            cv2.IMWRITE_JPEG_QUALITY,
            100,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ),
    ],
    ids=["baseline", "progressive", "optimized", "restart-markers", "q100-444"],
)
def test_valid_jpegs_decode_exactly_as_opencv_does(params: tuple[int, ...]) -> None:
    data = _jpeg(_photo_like(300), *params)
    assert np.array_equal(decode_image(data), _reference(data))
    gray = cv2.cvtColor(_photo_like(120, seed=3), cv2.COLOR_BGR2GRAY)
    data = _jpeg(gray, *params)  # a one-component JPEG
    assert np.array_equal(decode_image(data), _reference(data))


def test_valid_jpeg_with_exif_orientation_is_still_turned_upright() -> None:
    img = _photo_like(96)[:, :64]
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    plain = _jpeg(img)
    data = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain[2:]
    out = decode_image(data)
    assert out.shape == (64, 96)
    assert np.array_equal(out, cv2.rotate(_reference(plain), cv2.ROTATE_90_CLOCKWISE))


def test_casting_photographs_decode_exactly_as_opencv_does() -> None:
    for path in _casting_photos(12):
        data = path.read_bytes()
        assert np.array_equal(decode_image(data), _reference(data)), path.name


def test_threads_decoding_at_once_each_get_their_own_answer() -> None:
    # The check holds no process-wide state (no stderr capture): a damaged file on one thread
    # never taints a valid one on another, and the reverse.
    good = _jpeg(_photo_like(256))
    bad = _cut_with_end_marker(good, 0.5)
    expected = _reference(good)
    errors: list[str] = []

    def work(data: bytes, damaged: bool) -> None:
        for _ in range(40):
            try:
                out = decode_image(data)
            except DecodeError as exc:
                if not damaged:
                    errors.append(f"valid file refused: {exc}")
                continue
            if damaged:
                errors.append("damaged file decoded")
            elif not np.array_equal(out, expected):
                errors.append("valid file decoded to other pixels")

    threads = [threading.Thread(target=work, args=(d, d is bad)) for d in (good, bad) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
