"""Augmentation that identifies no class.

Every transform applies to good and bad parts alike, so the model cannot learn "rotated means
good" (the label leak of the original notebook). Rotation is about the part's own centre and the
new border is filled like the background, so a defect is never cut away.
"""

from __future__ import annotations

import cv2
import numpy as np


def part_centre(image: np.ndarray) -> tuple[float, float]:
    """Centre of the bright part on its dark background (image centre if there is none)."""
    background = float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))
    mask = (image.astype(np.int16) > background + 20).astype(np.uint8)
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] < 1:
        return (image.shape[1] - 1) / 2.0, (image.shape[0] - 1) / 2.0
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def augment(image: np.ndarray, rng: np.random.Generator, *, max_shift: float = 0.04) -> np.ndarray:
    """One random variation of a uint8 grayscale part, the same recipe for every class."""
    h, w = image.shape
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = int(np.median(border))
    cx, cy = part_centre(image)
    angle = float(rng.uniform(0.0, 360.0))
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
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
