"""Heatmap overlays for display and reports.

The heatmap itself is kept as 8-bit data (0..255, the model's input size); the overlay is made
from it on demand: a colour map blended on the grayscale part, only where the part is (the black
background stays black so the operator's eye goes to the part).

A stored heatmap is scaled to its own hottest point, so on its own it says *where* the model
looked, not *how sure* it was: a good part at score 0.17 would glow as hot as a bad one at 0.98.
Given the part's ``score``, the overlay shows ``heat x score`` instead, a scale that means the
same on every part (0: no sign of a defect anywhere, 1: a certain defect here), so a confident
good part looks cold. The default colour map is viridis (dark blue to yellow), which keeps its
order under every common colour-vision deficiency, unlike JET's red/green.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

_PART_LEVEL = 12  # background of a part on black is below this grey level
HEAT_COLORMAP = cv2.COLORMAP_VIRIDIS  # colour-blind safe, cold (dark blue) to hot (yellow)


def absolute_heat(heatmap: np.ndarray, score: float) -> np.ndarray:
    """The heatmap on the absolute scale: each cell times the part's score (0..1), uint8."""
    factor = min(max(float(score), 0.0), 1.0) if np.isfinite(score) else 0.0
    return cv2.convertScaleAbs(heatmap, alpha=factor)


def heat_ramp(width: int, colormap: int = HEAT_COLORMAP) -> np.ndarray:
    """The colour map as a 1 x ``width`` RGB uint8 ramp, cold on the left (for legends)."""
    ramp = np.linspace(0, 255, max(2, width)).astype(np.uint8)[None, :]
    return cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB)


def part_mask(image: np.ndarray, level: int = _PART_LEVEL) -> np.ndarray:
    """A float mask (0..1) of where the part is, softened so the overlay has no hard edge."""
    mask = (image > level).astype(np.uint8)
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(closed.astype(np.float32), (0, 0), sigmaX=max(1.0, image.shape[1] / 256))


def make_overlay(
    image: np.ndarray,
    heatmap: np.ndarray | None,
    *,
    size: tuple[int, int] | None = None,
    alpha: float = 0.45,
    masked: bool = True,
    score: float | None = None,
    colormap: int = HEAT_COLORMAP,
) -> np.ndarray:
    """Blend a heatmap on a grayscale image.

    Args:
        image: uint8 grayscale part, H x W (or H x W x 3, converted).
        heatmap: uint8 H' x W' heatmap of the bad class; any size, resized to the image. None
            gives the plain image in RGB.
        size: (width, height) of the result; default the image's own size.
        alpha: weight of the colour map where the heat is full.
        masked: colour only the part, not the background.
        score: the part's score (probability of defect): show the heat on the absolute scale
            (``absolute_heat``). None: the heatmap as stored (scaled to its own maximum).
        colormap: an OpenCV colour map; default ``HEAT_COLORMAP`` (viridis).

    Returns:
        An RGB uint8 array of the requested size.
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if size is not None and (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if heatmap is None:
        return base
    if score is not None:
        heatmap = absolute_heat(heatmap, score)
    heat = cv2.resize(heatmap, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(heat, colormap), cv2.COLOR_BGR2RGB)
    # Weight by the heat itself so that cold regions keep the part's true look.
    weight = cv2.LUT(heat, _weights(alpha).reshape(256, 1))
    if masked:
        weight = cv2.multiply(weight, part_mask(image))
    # One pass in OpenCV, no float image: a third of the time of the same blend in numpy.
    return cv2.blendLinear(colour, base, weight, 1.0 - weight)


@functools.lru_cache(maxsize=8)
def _weights(alpha: float) -> np.ndarray:
    """Blend weight of the colour map for each heat level 0..255."""
    return (alpha * (0.25 + 0.75 * np.arange(256, dtype=np.float32) / 255.0)).astype(np.float32)
