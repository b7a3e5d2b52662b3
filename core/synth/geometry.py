"""Where a part sits in the image, and cv2's fixed-point drawing: shared by rendering and defects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FIXED_POINT_ONE", "FIXED_POINT_SHIFT", "BBox", "Pose", "to_fixed"]

BBox = tuple[int, int, int, int]

FIXED_POINT_SHIFT = 4  # cv2 drawing with 1/16 pixel precision so small sizes stay round
FIXED_POINT_ONE = 1 << FIXED_POINT_SHIFT


@dataclass(frozen=True, slots=True)
class Pose:
    """Where one part lies in the image.

    Attributes:
        center_xy: Centre of the part in pixels.
        radius_px: Outer radius of the part in pixels.
        rotation_deg: Rotation, counter-clockwise as seen in the image, 0..360.
    """

    center_xy: tuple[float, float]
    radius_px: float
    rotation_deg: float


def to_fixed(points: npt.ArrayLike) -> np.ndarray:
    """Pixel coordinates as cv2's fixed-point integers (see ``FIXED_POINT_SHIFT``)."""
    return np.round(np.asarray(points, dtype=np.float64) * FIXED_POINT_ONE).astype(np.int32)
