"""Writing a labelled data set of synthetic parts (``good/``, ``bad/``) as PNG files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from core.common.fileio import write_atomic
from core.synth.parts import part_image

__all__ = ["encode_png", "generate_dataset"]

_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def generate_dataset(
    out_dir: Path,
    *,
    n_good: int,
    n_bad: int,
    size: int = 1024,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write a labelled data set of synthetic parts as PNG files.

    Files are ``out_dir/good/good_00000.png ...`` and ``out_dir/bad/bad_00000.png ...``; the
    same arguments always give byte-identical files. Existing files of the same names are
    replaced, others are left alone.

    Args:
        out_dir: Folder to write into (created when missing).
        n_good: Number of good parts.
        n_bad: Number of bad parts.
        size: Width and height of every image in pixels.
        seed: Series seed; good part ``i`` is ``part_image(seed, i, defective=False)``.
        progress: Called as ``progress(done, total)`` after each file.

    Returns:
        The paths written, good parts first.
    """
    if n_good < 0 or n_bad < 0:
        raise ValueError("n_good and n_bad must not be negative")
    total = n_good + n_bad
    written: list[Path] = []
    for label, count, defective in (("good", n_good, False), ("bad", n_bad, True)):
        folder = Path(out_dir) / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, _spec = part_image(seed, index, defective=defective, size=size)
            path = folder / f"{label}_{index:05d}.png"
            # No fsync: a data set is regenerated, not recovered, after a crash.
            write_atomic(path, encode_png(image), fsync=False)
            written.append(path)
            if progress is not None:
                progress(len(written), total)
    return written


def encode_png(image: np.ndarray) -> bytes:
    """``image`` as PNG bytes, at the compression every synthetic file uses."""
    ok, buffer = cv2.imencode(".png", image, _PNG_PARAMS)
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a PNG")
    return buffer.tobytes()
