"""The heatmap on the absolute scale (heat x score) and the colour-blind-safe colour map."""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.overlay import HEAT_COLORMAP, absolute_heat, heat_ramp, make_overlay, part_mask
from core.synth.parts import part_image


def _colour_amount(out: np.ndarray, image: np.ndarray) -> float:
    """How far the overlay strays from the plain grey part, on the part (mean per channel)."""
    on_part = part_mask(image) > 0.99
    return float(np.abs(out.astype(int) - image[:, :, None].astype(int))[on_part].mean())


def test_a_confident_good_part_looks_cold_and_a_bad_part_hot() -> None:
    image, _ = part_image(5, 0, defective=True, size=160)
    full = np.full((7, 7), 255, np.uint8)  # a stored heatmap is scaled to its own maximum
    good = make_overlay(image, full, score=0.05)
    bad = make_overlay(image, full, score=0.95)
    relative = make_overlay(image, full)  # the old, per-part scale: as hot as the bad part
    assert _colour_amount(bad, image) > 3 * _colour_amount(good, image)
    assert abs(_colour_amount(relative, image) - _colour_amount(bad, image)) < 0.15 * _colour_amount(
        bad, image
    )
    # The hue says the same: the good part's tint is the cold end of the map, the bad one's the hot.
    cold, hot = heat_ramp(256)[0, 12].astype(int), heat_ramp(256)[0, 242].astype(int)
    centre = (80, 80)
    tint_good = good[centre[1], centre[0]].astype(int) - image[centre[1], centre[0]]
    tint_bad = bad[centre[1], centre[0]].astype(int) - image[centre[1], centre[0]]
    assert np.dot(tint_good, cold - cold.mean()) > np.dot(tint_good, hot - hot.mean())
    assert np.dot(tint_bad, hot - hot.mean()) > np.dot(tint_bad, cold - cold.mean())


def test_absolute_heat_scales_by_the_clipped_score() -> None:
    heat = np.array([[0, 100, 255]], np.uint8)
    assert absolute_heat(heat, 0.5).tolist() == [[0, 50, 128]]
    assert absolute_heat(heat, 1.7).tolist() == [[0, 100, 255]]
    assert absolute_heat(heat, -1).tolist() == [[0, 0, 0]]
    assert absolute_heat(heat, float("nan")).tolist() == [[0, 0, 0]]


def test_the_default_map_is_viridis_ordered_by_lightness() -> None:
    assert HEAT_COLORMAP == cv2.COLORMAP_VIRIDIS
    ramp = heat_ramp(64)
    assert ramp.shape == (1, 64, 3) and ramp.dtype == np.uint8
    # Lightness rises monotonically from cold to hot: order survives colour-blindness and greyscale.
    lightness = cv2.cvtColor(ramp, cv2.COLOR_RGB2LAB)[0, :, 0].astype(int)
    assert (np.diff(lightness) >= 0).all() and lightness[-1] - lightness[0] > 150
