"""Augmentation that identifies no class.

Every transform applies to good and bad parts alike, so the model cannot learn "rotated means
good" (the label leak of the original notebook). Rotation is about the part's own centre and the
new border is filled like the background, so a defect is never cut away.
"""

from __future__ import annotations

import cv2
import numpy as np


def part_centre(image: np.ndarray) -> tuple[float, float]:
    """Centre of the part: the centre of its round outline (``_find_circle``), else the centroid
    of the pixels that differ from the background (the picture's border) by more than 20 grey levels,
    else the picture's centre.

    The outline comes first: on the casting photographs the background is light and the part is
    both darker and lighter than it, so a centroid of "brighter than the background" landed up to
    100 px off (seen on 6 of 6 photographs; the rotation then moved parts half out of the picture,
    taking the defect of a bad part with it while its label stayed bad).
    """
    h, w = image.shape
    found = _find_circle(image)
    if found is not None:
        return found[0], found[1]
    background = float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))
    mask = (np.abs(image.astype(np.int16) - background) > 20).astype(np.uint8)
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] < 1:
        return (w - 1) / 2.0, (h - 1) / 2.0
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def augment(
    image: np.ndarray, rng: np.random.Generator, *, max_shift: float = 0.04, scale_jitter: float = 0.0
) -> np.ndarray:
    """One random variation of a uint8 grayscale part, the same recipe for every class.

    ``scale_jitter`` (e.g. 0.08) also zooms by up to that fraction either way, about the part's
    centre, as a camera a little nearer or farther would.
    """
    h, w = image.shape
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = int(np.median(border))
    cx, cy = part_centre(image)
    angle = float(rng.uniform(0.0, 360.0))
    scale = float(rng.uniform(1.0 - scale_jitter, 1.0 + scale_jitter)) if scale_jitter else 1.0
    matrix = np.asarray(cv2.getRotationMatrix2D((cx, cy), angle, scale), dtype=np.float64)
    matrix[:, 2] += rng.uniform(-max_shift, max_shift, size=2) * (w, h)
    out = cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1, :]
    gain = rng.uniform(0.85, 1.15)
    offset = rng.uniform(-12.0, 12.0)
    out = out.astype(np.float32) * gain + offset
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=float(rng.uniform(0.3, 1.0)))
    return np.clip(out, 0, 255).astype(np.uint8)


def add_spots(image: np.ndarray, rng: np.random.Generator, *, count: tuple[int, int] = (1, 3)) -> np.ndarray:
    """A copy of a good part with a few small dark pits on its bright metal: a synthetic defect.

    Pits of one or two pixels at the model's input are a defect a small sample may not show (on
    the casting data, the one part every seed-regime model missed has a few, near its rim). Each
    pit darkens the metal to 30-60% of its grey under a Gaussian profile of 0.6-1.8 px radius,
    somewhere on the part (the circle found by a Hough transform; the middle of the picture when
    none is found) where the metal is brighter than its median. Measured there with 15% of good
    parts: that part scored higher, but good parts, which have specks of their own, more so.
    """
    out = image.astype(np.float32)
    h, w = image.shape
    cx, cy, radius = _part_circle(image)
    yy, xx = np.mgrid[0:h, 0:w]
    on_part = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.95 * radius) ** 2
    ys, xs = np.nonzero(on_part & (image > np.median(image[on_part]) + 10))
    if len(ys) == 0:
        return image.copy()
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        k = int(rng.integers(len(ys)))
        sigma, depth = float(rng.uniform(0.6, 1.8)), float(rng.uniform(0.4, 0.7))
        y0, x0 = ys[k] + rng.uniform(-0.5, 0.5), xs[k] + rng.uniform(-0.5, 0.5)
        r = int(np.ceil(sigma * 3))
        sl = (slice(max(0, int(y0) - r), int(y0) + r + 1), slice(max(0, int(x0) - r), int(x0) + r + 1))
        d2 = (yy[sl] - y0) ** 2 + (xx[sl] - x0) ** 2
        out[sl] *= 1.0 - depth * np.exp(-d2 / (2 * sigma**2))
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _find_circle(image: np.ndarray) -> tuple[float, float, float] | None:
    """(x, y, radius) of the round part's outer rim by a Hough transform on a copy of at most
    128 px (about 1 ms a picture), or None when there is no such circle."""
    h, w = image.shape
    scale = min(1.0, 128.0 / max(h, w))
    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    sw = small.shape[1]
    circles = cv2.HoughCircles(
        cv2.medianBlur(small, 5), cv2.HOUGH_GRADIENT, dp=1.5, minDist=sw, param1=100, param2=30,
        minRadius=int(0.3 * sw), maxRadius=int(0.55 * sw),
    )  # fmt: skip
    if circles is None:
        return None
    x, y, r = circles[0][0]
    return float(x) / scale, float(y) / scale, float(r) / scale


def _part_circle(image: np.ndarray) -> tuple[float, float, float]:
    """(x, y, radius) of the round part (``_find_circle``), else a guess: the picture's middle."""
    h, w = image.shape
    return _find_circle(image) or ((w - 1) / 2.0, (h - 1) / 2.0, 0.35 * w)


def good_only_validation(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation for a run with no bad image at all: the good images, and a copy of each with
    pits (:func:`add_spots`, drawn from ``seed``) labelled bad, so that epochs are still chosen
    and the classifier's threshold set on a defect, if only a synthetic one."""
    good = images[labels == 0]
    draw = np.random.default_rng([seed, 7])
    spotted = np.stack([add_spots(image, draw) for image in good]) if len(good) else good
    return (
        np.concatenate([images, spotted]),
        np.concatenate([labels, np.ones(len(spotted), dtype=labels.dtype)]),
    )


def good_only_loss_labels(labels: np.ndarray, share: float) -> np.ndarray:
    """The class counts the loss is weighted by when bad parts are only the synthetic ones:
    ``share`` of the good images become bad in each epoch."""
    spotted = round(len(labels) * share)
    return np.repeat(np.array([0, 1], dtype=labels.dtype), [len(labels) - spotted, spotted])
