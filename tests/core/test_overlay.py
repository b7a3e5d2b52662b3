"""The display overlay: colour map blended on the grey part, only where the part is."""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.overlay import make_overlay, part_mask
from core.synth.parts import part_image


def _reference(image: np.ndarray, heatmap: np.ndarray, alpha: float) -> np.ndarray:
    """The blend written out in float arithmetic, for comparison."""
    heat = cv2.resize(heatmap, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET)[:, :, ::-1].astype(np.float64)
    weight = alpha * (0.25 + 0.75 * heat / 255.0) * part_mask(image)
    base = np.repeat(image[:, :, None], 3, axis=2).astype(np.float64)
    return base * (1 - weight[:, :, None]) + colour * weight[:, :, None]


def test_overlay_matches_the_blend_and_leaves_the_background_black() -> None:
    image, _ = part_image(3, 0, defective=True, size=200)
    heatmap = np.zeros((7, 7), np.uint8)
    heatmap[2:4, 4:6] = 255
    out = make_overlay(image, heatmap, alpha=0.45, colormap=cv2.COLORMAP_JET)

    assert out.shape == (200, 200, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(np.float64) - _reference(image, heatmap, 0.45)).max() <= 1.0
    far_background = cv2.erode((image == 0).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert far_background.any() and (out[far_background] == 0).all()
    # Hot cells are red on the part, cold ones keep the part's grey with a blue tint.
    hot = cv2.resize(heatmap, (200, 200), interpolation=cv2.INTER_NEAREST) == 255
    on_part = part_mask(image) > 0.99
    red, blue = out[..., 0].astype(int), out[..., 2].astype(int)
    assert (red - blue)[hot & on_part].mean() > 40
    assert (blue - red)[~hot & on_part & (cv2.resize(heatmap, (200, 200)) == 0)].mean() > 0


def test_overlay_at_display_size_and_without_heatmap() -> None:
    image, _ = part_image(3, 1, defective=False, size=300)
    out = make_overlay(image, np.full((7, 7), 128, np.uint8), size=(150, 120))
    assert out.shape == (120, 150, 3)
    plain = make_overlay(image, None)
    assert plain.shape == (300, 300, 3) and (plain[..., 0] == image).all() and (plain[..., 2] == image).all()
    unmasked = make_overlay(image, np.full((7, 7), 255, np.uint8), masked=False)
    assert (unmasked[image == 0] != 0).any()  # the colour reaches the background when asked
