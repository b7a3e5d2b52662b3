"""The one decode path for every image: files, the hot folder, training data and cameras.

Whatever arrives becomes a uint8 grayscale H x W array or a ``DecodeError`` whose message is the
reason logged for a not-inspected part. A damaged picture is not a picture of the part: it never
reaches the model. Checks happen before decoding where they can (:mod:`core.imaging.headers`:
empty or oversized files, unknown formats, decompression bombs and memory hogs from the header,
files cut short) and around it where OpenCV is lenient: a truncated JPEG or PNG decodes to a
partly grey image without complaint (so end markers and TIFF strips are checked first), and a
JPEG with damaged data only makes libjpeg print a warning (so libjpeg-turbo checks it strictly).

Conversions, the same for every source so training, evaluation and the line see the same pixels:

- 16-bit samples keep their top 8 bits (``value >> 8``).
- Floating-point samples (32/64-bit TIFF) in [0, 1] are scaled to 0..255 and rounded; other
  ranges, NaN and infinity are refused with the range in the message.
- Colour (and palette) images are converted with OpenCV's BGR-to-gray weights.
- Transparent pixels are composited on black, the station's background.
- The EXIF orientation of JPEGs (and of PNGs with an ``eXIf`` chunk) and TIFFs' Orientation
  tag are applied.
- Camera frames go through :func:`frame_to_gray`, which is the same conversion.

Memory: the decoded samples must fit ``max_decode_bytes`` (from the header, before decoding) and
conversions run in bands of rows, so the peak is that buffer plus the result plus a few MiB.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import simplejpeg  # type: ignore[import-untyped]  # ships _jpeg.pyi but no py.typed marker

from core.imaging.headers import (
    DecodeError,
    Header,
    TruncatedError,
    check_complete,
    read_header,
    sniff_format,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_DECODE_BYTES",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "DecodeError",
    "TruncatedError",
    "decode_image",
    "frame_to_gray",
    "read_file",
    "read_image",
    "sniff_format",
]

MAX_PIXELS = 50_000_000  # refuse anything larger before decoding it (decompression bombs)
MAX_FILE_BYTES = 256 * 2**20  # refuse larger files before reading them into memory
# The most memory one decode may take beyond its input, estimated from the header before
# decoding: OpenCV's imdecode holds two copies of the decoded samples (width x height x channels
# x bytes per sample) at its peak, measured on PNG, JPEG, BMP and TIFF, or the samples plus all
# DCT coefficients for a progressive JPEG; the conversions to gray run in row bands and add a few
# MiB. 512 MiB admits every 8-bit image up to MAX_PIXELS (RGBA included) and 16-bit gray; it
# refuses e.g. a 7000 x 7000 16-bit RGBA PNG (784 MB to decode; it peaked at 2.6 GB before).
MAX_DECODE_BYTES = 512 * 2**20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Conversions work on bands of rows with at most this many float32 values, so their temporaries
# stay a few MiB however large the image.
_BAND_VALUES = 2**21


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


def _to_gray8(img: np.ndarray, *, name: str = "frame") -> np.ndarray:
    """Any supported sample type and channel layout -> uint8 gray, converted in bands of rows.

    Bands keep the temporaries (shifted 16-bit samples, float alpha products) a few MiB instead
    of several copies of a large image; every step is per pixel, so the result is the same.
    """
    if img.dtype == np.uint8 and img.ndim == 2:
        return img
    if img.dtype.kind == "f":
        _check_unit_range(img, name)
    elif img.dtype not in (np.uint8, np.uint16):
        raise DecodeError(f"unsupported sample type {img.dtype} in the {name}")
    height, width = img.shape[:2]
    channels = 1 if img.ndim == 2 else img.shape[2]
    rows = max(1, _BAND_VALUES // max(1, width * channels))
    out = np.empty((height, width), np.uint8)
    for y in range(0, height, rows):
        out[y : y + rows] = _band_to_gray8(img[y : y + rows])
    return out


def _check_unit_range(img: np.ndarray, name: str) -> None:
    """Floating-point samples must lie in [0, 1], which is scaled to 0..255.

    Anything else is refused rather than guessed: a stretch to the image's own min..max (the old
    rule) shows a dark part as bright and a flat one as black, and clipping would hide the very
    values that say something is wrong.
    """
    # min/max propagate NaN and infinity, and need no temporary the size of the image.
    low, high = float(np.min(img)), float(np.max(img))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DecodeError(f"float {name} with NaN or infinite values")
    if low < 0.0 or high > 1.0:
        raise DecodeError(
            f"float {name} with values in [{low:g}, {high:g}]; only [0, 1] is supported (scaled to 0..255)"
        )


def _band_to_gray8(band: np.ndarray) -> np.ndarray:
    if band.dtype == np.uint16:
        band = (band >> 8).astype(np.uint8)
    elif band.dtype != np.uint8:
        band = np.rint(band.astype(np.float32) * 255.0).astype(np.uint8)
    if band.ndim == 2:
        return band
    if band.shape[2] == 4:
        # Composite on black, which is the station's background.
        alpha = band[:, :, 3:4].astype(np.float32) / 255.0
        band = (band[:, :, :3].astype(np.float32) * alpha).astype(np.uint8)
    elif band.shape[2] == 2:  # gray + alpha
        alpha2 = band[:, :, 1].astype(np.float32) / 255.0
        return (band[:, :, 0].astype(np.float32) * alpha2).astype(np.uint8)
    if band.shape[2] == 1:
        return band[:, :, 0]
    return cv2.cvtColor(band, cv2.COLOR_BGR2GRAY)


def frame_to_gray(frame: np.ndarray) -> np.ndarray:
    """A camera frame (BGR, BGRA, mono; 8 or 16 bit) -> uint8 grayscale, as files are converted.

    Raises:
        DecodeError: The frame is empty or not an image array.
    """
    if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.ndim not in (2, 3):
        raise DecodeError("empty or malformed camera frame")
    if frame.ndim == 3 and frame.shape[2] not in (1, 2, 3, 4):
        raise DecodeError(f"camera frame with {frame.shape[2]} channels")
    return _to_gray8(frame, name="camera frame")


def _check_jpeg_data(data: bytes) -> None:
    """Raise ``DecodeError`` when libjpeg finds the entropy-coded data damaged.

    libjpeg reports damaged data (a scan cut short, bits that are no Huffman code, a missing
    restart marker) as *warnings* and fills the rest of the image with grey; OpenCV prints them
    on stderr and returns the image. simplejpeg runs libjpeg-turbo with "stop on warning"
    (``strict=True``) and raises them instead. Capturing OpenCV's stderr would be the other way,
    but fd 2 is one per process: every thread's output would pass through the capture, and all
    decodes would have to queue on one lock.

    The check decodes at 1/8 scale: the entropy decoding, which is where damage is found, runs in
    full at any scale, while the inverse DCT shrinks to one value per block (~0.1 ms for a
    300 x 300 photograph). The pixels still come from OpenCV, so a valid JPEG decodes exactly as
    before. Each call makes its own decompressor: no shared state, safe on any thread.
    """
    try:
        colour = simplejpeg.decode_jpeg_header(data)[2]
        simplejpeg.decode_jpeg(
            data,
            colorspace="CMYK" if colour in ("CMYK", "YCCK") else "GRAY",  # libjpeg has no CMYK->gray
            strict=True,
            min_height=1,
            min_width=1,
            min_factor=8,
        )
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        if "unsupported" in message.lower():
            raise DecodeError(f"unsupported JPEG ({message})") from exc
        raise DecodeError(f"corrupt JPEG data: {message.removeprefix('Corrupt JPEG data: ')}") from exc


def _check_budget(header: Header, max_pixels: int, max_decode_bytes: int) -> None:
    width, height = header.width, header.height
    if width == 0 or height == 0:
        raise DecodeError(f"invalid image size {width} x {height}")
    if width * height > max_pixels:
        raise DecodeError(f"refused: {width} x {height} pixels exceeds the limit of {max_pixels:,}")
    samples = width * height * header.channels * header.bytes_per_sample
    needed = samples + max(samples, header.work_bytes)
    if needed > max_decode_bytes:
        raise DecodeError(
            f"refused: {width} x {height} x {header.channels} channels x {header.bytes_per_sample} bytes"
            f" = {samples:,} bytes decoded, about {needed:,} bytes to decode, over the decode memory"
            f" limit of {max_decode_bytes:,} bytes"
        )


def decode_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, max_decode_bytes: int = MAX_DECODE_BYTES
) -> np.ndarray:
    """Encoded bytes -> uint8 grayscale image, or ``DecodeError`` with the reason.

    Args:
        data: The whole file.
        max_pixels: Refuse images with more pixels than this, from the header alone.
        max_decode_bytes: Refuse, from the header, images that would take more memory than this
            to decode (see ``MAX_DECODE_BYTES``).

    Raises:
        TruncatedError: The file ends early (no end marker, a TIFF strip past the end): it may
            still be being written.
        DecodeError: Empty, not an image, damaged, too large or unsupported; the message says which.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise DecodeError(f"refused: {len(data):,} bytes exceeds the file size limit of {MAX_FILE_BYTES:,}")
    fmt = sniff_format(data)
    header = read_header(data, fmt)
    _check_budget(header, max_pixels, max_decode_bytes)
    check_complete(data, fmt)
    if fmt == "jpeg":
        _check_jpeg_data(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    unchanged = header.alpha or header.floating
    try:
        # Only IMREAD_UNCHANGED keeps an alpha channel, and only it reads a 1-channel float TIFF;
        # it skips a PNG's EXIF orientation, which is applied after the conversion to gray. The
        # other flags keep 16-bit data, expand palettes and apply the EXIF orientation; a gray
        # file read as colour would only be turned back into the same gray.
        if unchanged:
            flags = cv2.IMREAD_UNCHANGED
        else:
            flags = (cv2.IMREAD_GRAYSCALE if header.gray else cv2.IMREAD_COLOR) | cv2.IMREAD_ANYDEPTH
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise DecodeError(f"corrupt {fmt.upper()} (the decoder failed: {exc.err})") from exc
    if img is None or img.size == 0:
        raise DecodeError(f"corrupt {fmt.upper()} (the decoder could not read it)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise DecodeError(f"refused: {img.shape[1]} x {img.shape[0]} pixels exceeds the limit")
    gray = _to_gray8(img, name=fmt.upper())
    del img  # the decoded samples are the largest buffer: free them before turning the result
    return _apply_orientation(gray, header.orientation) if unchanged else gray


def read_image(
    path: Path, *, max_pixels: int = MAX_PIXELS, max_decode_bytes: int = MAX_DECODE_BYTES
) -> np.ndarray:
    """Read and decode a file; I/O failures become ``DecodeError`` too."""
    return decode_image(read_file(path), max_pixels=max_pixels, max_decode_bytes=max_decode_bytes)


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
