"""Feeding synthetic parts into a hot folder at a steady rate, as a line camera would."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from core.synth.dataset import encode_png
from core.synth.parts import part_image

__all__ = ["feed_hot_folder"]

log = logging.getLogger(__name__)

# How often a feeder whose hot folder has gone retries, like a camera's transfer software would.
_RETRY_S = 0.5

_FEEDER_LABEL_SALT = 2  # SeedSequence key for the feeder's good/bad draw; 0 and 1 are images


def feed_hot_folder(
    inbox: Path,
    *,
    rate_hz: float,
    count: int | None = None,
    seed: int = 0,
    bad_fraction: float = 0.2,
    size: int = 1024,
    start_index: int = 0,
    stop: threading.Event | None = None,
) -> int:
    """Drop synthetic parts into a hot folder at a steady rate, like a line camera would.

    Each file is written under a hidden temporary name (``.part_000123_good.png.tmp``) in the
    inbox and renamed into place, so a watcher never sees half a file. Files are named
    ``part_{index:06d}_{good|bad}.png``; the label is only for demos. Whether part ``index`` is
    bad depends only on ``seed``, ``index`` and ``bad_fraction``.

    Parts are scheduled at ``start + k / rate_hz`` so the rate does not drift when rendering
    takes time; when rendering is slower than the rate, parts follow each other without pause.

    Args:
        inbox: The hot folder (created when missing).
        rate_hz: Parts per second, greater than 0.
        count: Number of parts to write; ``None`` writes until ``stop`` is set (forever when
            ``stop`` is None too).
        seed: Series seed.
        bad_fraction: Share of bad parts, 0..1.
        size: Width and height of every image in pixels.
        start_index: Index of the first part, to continue an earlier run without reusing names.
        stop: Set it to end the feed early; waiting between parts wakes up at once.

    When the inbox disappears (deleted, an unmounted share) the feeder keeps the part it was
    writing and retries every half second until the folder is back or ``stop`` is set, as a
    camera's transfer software does; it never recreates the folder, so the station sees the
    outage.

    Returns:
        The number of parts written.

    Raises:
        ValueError: If ``rate_hz`` is not positive, ``count`` is negative or ``bad_fraction``
            is outside 0..1.
    """
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    if count is not None and count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"bad_fraction must be within 0..1, got {bad_fraction}")
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    interval_s = 1.0 / rate_hz
    start_s = time.monotonic()
    written = 0
    while count is None or written < count:
        if written > 0:
            delay_s = start_s + written * interval_s - time.monotonic()
            if stop is not None:
                if stop.wait(max(0.0, delay_s)):
                    break
            elif delay_s > 0:
                time.sleep(delay_s)
        if stop is not None and stop.is_set():
            break
        index = start_index + written
        defective = _feeder_part_is_bad(seed, index, bad_fraction)
        image, _spec = part_image(seed, index, defective=defective, size=size)
        name = f"part_{index:06d}_{'bad' if defective else 'good'}.png"
        if not _write_when_possible(inbox, name, encode_png(image), stop):
            break
        written += 1
    return written


def _write_when_possible(inbox: Path, name: str, data: bytes, stop: threading.Event | None) -> bool:
    """Write one part (temp file, then rename); wait while the inbox is missing.

    Returns False when ``stop`` was set before the part could be written.
    """
    tmp = inbox / f".{name}.tmp"
    outage = False
    while True:
        try:
            tmp.write_bytes(data)
            os.replace(tmp, inbox / name)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            if not outage:
                log.warning("hot folder %s is missing; waiting for it to come back", inbox)
                outage = True
            if stop is not None:
                if stop.wait(_RETRY_S):
                    return False
            else:
                time.sleep(_RETRY_S)
            continue
        if outage:
            log.warning("hot folder %s is back; feeding again", inbox)
        return True


def _feeder_part_is_bad(seed: int, index: int, bad_fraction: float) -> bool:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _FEEDER_LABEL_SALT]))
    return bool(rng.uniform() < bad_fraction)
