"""What a file's header says, read without decoding a pixel: size, samples, completeness.

The decode path (:mod:`core.imaging.decode`) uses this to refuse decompression bombs and memory
hogs before OpenCV allocates anything, and to tell a file that is still being written
(``TruncatedError``: a hot folder waits) from one that is broken.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


class DecodeError(ValueError):
    """An input that cannot be inspected; the message is the reason shown and logged."""


class TruncatedError(DecodeError):
    """The file ends early: a broken file, or one still being written (a hot folder waits once)."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/DAC/JPG.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Progressive ones keep every coefficient of the image in memory while decoding.
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})

# TIFF tags read here.
_WIDTH, _HEIGHT, _BITS, _SAMPLES, _SAMPLE_FORMAT = 256, 257, 258, 277, 339
_STRIP_OFFSETS, _STRIP_COUNTS, _TILE_OFFSETS, _TILE_COUNTS = 273, 279, 324, 325
_TIFF_FLOAT = 3  # SampleFormat: IEEE floating point
_TIFF_TYPES = {1: "u1", 3: "u2", 4: "u4", 16: "u8"}  # BYTE, SHORT, LONG, LONG8: the integer types used


@dataclass(frozen=True, slots=True)
class Header:
    """What the header says about the image.

    Attributes:
        width: Pixels across.
        height: Pixels down.
        channels: Samples per pixel in the file (gray 1, gray + alpha 2, colour 3, with alpha 4).
        bytes_per_sample: 1 for 8-bit (and fewer) samples, 2 for 16-bit, 4 or 8 for floats.
        alpha: A PNG with an alpha channel or a transparency chunk.
        floating: Samples are floating point (TIFF SampleFormat 3).
        gray: One gray channel without alpha (PNG colour type 0, one-component JPEG): read as gray,
            which gives the same pixels as colour-then-gray in a third of the memory.
        orientation: EXIF orientation 1..8 that OpenCV will not apply itself (a PNG read with
            IMREAD_UNCHANGED).
        work_bytes: Memory a decoder needs beyond its output (a progressive JPEG's coefficients).
    """

    width: int
    height: int
    channels: int = 3
    bytes_per_sample: int = 1
    alpha: bool = False
    floating: bool = False
    gray: bool = False
    orientation: int = 1
    work_bytes: int = 0


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


def read_header(data: bytes, fmt: str) -> Header:
    """The header of ``data`` in format ``fmt`` (from :func:`sniff_format`).

    Raises:
        TruncatedError: The header itself is cut short.
        DecodeError: The header is malformed.
    """
    return {"png": _png_header, "jpeg": _jpeg_header, "bmp": _bmp_header, "tiff": _tiff_header}[fmt](data)


def check_complete(data: bytes, fmt: str) -> None:
    """Raise ``TruncatedError`` when the file visibly ends before its last byte was written.

    PNG and JPEG must end with their end marker; every TIFF strip or tile must lie inside the
    file (a streaming writer puts the directory first and the pixels after it); a BMP's declared
    size is checked with its header.
    """
    # Some writers pad files with zeros (pre-allocated buffers); the end marker precedes them.
    tail = data[-4096:].rstrip(b"\x00")
    if fmt == "png" and b"IEND" not in tail[-32:]:
        raise TruncatedError("truncated PNG (no IEND chunk)")
    if fmt == "jpeg" and b"\xff\xd9" not in tail[-32:]:
        raise TruncatedError("truncated JPEG (no end-of-image marker)")
    if fmt == "tiff":
        _check_tiff_blocks(data)


# ------------------------------------------------------------------------------------ formats


def _png_header(data: bytes) -> Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise TruncatedError("truncated PNG (no header)")
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
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
            orientation = tiff_orientation(body)
        pos += 12 + length
    # What OpenCV hands back: gray + alpha keeps 2 channels, anything else with alpha 4; without
    # alpha, gray is read as gray and the rest as 3-channel colour.
    gray = colour_type == 0 and not alpha
    channels = (2 if colour_type == 4 else 4) if alpha else (1 if gray else 3)
    sample = 2 if depth == 16 else 1
    return Header(
        width,
        height,
        channels=channels,
        bytes_per_sample=sample,
        alpha=alpha,
        gray=gray,
        orientation=orientation,
    )


def _jpeg_header(data: bytes) -> Header:
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
            precision = data[i + 4]
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            components = data[i + 9]
            sample = 2 if precision > 8 else 1
            # A progressive decoder holds every DCT coefficient (2 bytes each) until the last scan;
            # counting every component at full size is the upper bound (no subsampling).
            work = width * height * components * 2 if marker in _JPEG_PROGRESSIVE else 0
            gray = components == 1
            return Header(
                width, height, channels=1 if gray else 3, bytes_per_sample=sample, gray=gray, work_bytes=work
            )
        i += 2 + length
    raise TruncatedError("truncated JPEG (no frame header)")


def _bmp_header(data: bytes) -> Header:
    if len(data) < 26:
        raise TruncatedError("truncated BMP (no header)")
    declared_size, info_size = struct.unpack("<I8xI", data[2:18])
    if info_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    if declared_size and len(data) < declared_size:
        raise TruncatedError(f"truncated BMP ({len(data)} of {declared_size} bytes)")
    return Header(abs(width), abs(height))  # a negative height means rows top-down


def _tiff_header(data: bytes) -> Header:
    tags = _tiff_tags(data, frozenset({_WIDTH, _HEIGHT, _BITS, _SAMPLES, _SAMPLE_FORMAT}))
    if _WIDTH not in tags or _HEIGHT not in tags:
        raise DecodeError("corrupt TIFF (no image size in the header)")
    if not (tags[_WIDTH].size and tags[_HEIGHT].size):
        raise DecodeError("corrupt TIFF (an empty image size in the header)")
    width, height = int(tags[_WIDTH][0]), int(tags[_HEIGHT][0])
    samples = int(tags[_SAMPLES][0]) if tags.get(_SAMPLES, np.zeros(0)).size else 1
    bits = int(tags[_BITS].max()) if tags.get(_BITS, np.zeros(0)).size else 1
    # OpenCV's TIFF reader applies the Orientation tag itself, with every flag: orientation 1.
    if _TIFF_FLOAT in tags.get(_SAMPLE_FORMAT, np.zeros(0)):
        # Floats are read with IMREAD_UNCHANGED: OpenCV cannot expand a 1-channel float TIFF to
        # colour ("ncn == img.channels()"), so they come back with the file's own channels.
        return Header(width, height, channels=samples, bytes_per_sample=max(1, bits // 8), floating=True)
    return Header(width, height, channels=3, bytes_per_sample=2 if bits > 8 else 1)


# ------------------------------------------------------------------------------------ TIFF


def _tiff_tags(data: bytes, wanted: frozenset[int]) -> dict[int, np.ndarray]:
    """The ``wanted`` integer tags of the first directory, read wherever they are stored.

    Values come back as uint64 arrays: a strip table can hold millions of entries, and a file
    that claims more than it holds is caught by the length check, not by building Python ints.

    Raises:
        TruncatedError: The directory, or an array it points to, lies past the end of the data.
    """
    endian = "<" if data[:2] == b"II" else ">"
    tags: dict[int, np.ndarray] = {}
    try:
        (ifd,) = struct.unpack(endian + "I", data[4:8])
        (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
        # The directory ends with the offset of the next one: a writer that has not written it
        # has not finished the file.
        struct.unpack(endian + "I", data[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
        for k in range(count):
            entry = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            tag, kind, n = struct.unpack(endian + "HHI", entry[:8])
            if kind not in _TIFF_TYPES or tag not in wanted:
                continue
            dtype = np.dtype(endian + _TIFF_TYPES[kind])
            size = n * dtype.itemsize
            if size <= 4:
                raw = entry[8 : 8 + size]
            else:  # stored elsewhere; the entry holds its offset
                (at,) = struct.unpack(endian + "I", entry[8:12])
                raw = data[at : at + size]
            if len(raw) != size:
                raise TruncatedError(f"truncated TIFF (tag {tag} has {len(raw)} of its {size} bytes)")
            tags[tag] = np.frombuffer(raw, dtype).astype(np.uint64)
    except struct.error as exc:
        raise TruncatedError("truncated TIFF (no complete header)") from exc
    return tags


def _check_tiff_blocks(data: bytes) -> None:
    tags = _tiff_tags(data, frozenset({_STRIP_OFFSETS, _STRIP_COUNTS, _TILE_OFFSETS, _TILE_COUNTS}))
    empty = np.zeros(0, np.uint64)
    for offsets_tag, counts_tag, what in (
        (_STRIP_OFFSETS, _STRIP_COUNTS, "strip"),
        (_TILE_OFFSETS, _TILE_COUNTS, "tile"),
    ):
        offsets, counts = tags.get(offsets_tag, empty), tags.get(counts_tag, empty)
        if len(counts) != len(offsets):
            raise DecodeError(f"corrupt TIFF ({len(offsets)} {what} offsets but {len(counts)} byte counts)")
        past = np.flatnonzero(offsets + counts > len(data))
        if past.size:
            index = int(past[0])
            end = int(offsets[index] + counts[index])
            raise TruncatedError(f"truncated TIFF ({what} {index} ends at byte {end} of {len(data)})")


def tiff_orientation(exif: bytes) -> int:
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
