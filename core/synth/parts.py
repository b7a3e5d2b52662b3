"""Rendering seeded synthetic parts for the built-in demo and for tests (``render_part``, ``part_image``).

The part is a round, badge-like metal part (rim, groove, a band of raised marks, an inner ring
and an emblem) lit from the upper left, on a black background. Good parts vary the way parts on
a line do: rotation, a small offset and scale change, exposure, focus and sensor noise. Bad parts
are good parts that also carry one or more defects: dark blotches, scratches, corrupted image
blocks or missing pieces.

Everything is a pure function of a numpy ``Generator``: ``part_image(seed, index, ...)`` is the
same array on every call, whatever was rendered before it. Rendering a 1024 x 1024 part takes
about 35-50 ms on a 2-core CPU (the first part of a size also builds a cached template, ~50 ms);
a 128 x 128 part takes under 1 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from core.synth.defects import Defect, apply_defects
from core.synth.geometry import FIXED_POINT_ONE, FIXED_POINT_SHIFT, Pose, to_fixed

__all__ = ["PartSpec", "part_image", "render_part"]

# Geometry, as fractions of the image size. The largest part (radius 0.42) plus the largest
# offset (0.04) still leaves 0.04 of black margin, more than the widest blur reaches.
_RADIUS_FRAC = 0.40
_SCALE_RANGE = (0.93, 1.05)
_MAX_OFFSET_FRAC = 0.04
_MAX_BLUR_SIGMA_FRAC = 1.6 / 1024.0  # focus blur, relative to the image size
_TEMPLATE_RADIUS_FRAC = _RADIUS_FRAC * _SCALE_RANGE[1]

# Light from the upper left at 45 degrees elevation, fixed in the camera frame as on a real
# station: highlights stay put while the part turns, so rotation changes the shading too.
_LIGHT_AZIMUTH_DEG = 225.0
_LIGHT_ELEVATION_DEG = 45.0
_RELIEF = 0.045  # height units per unit of radius; sets how steep the embossed edges look


@dataclass(frozen=True, slots=True)
class PartSpec:
    """What was drawn, for tests and for debugging.

    Attributes:
        defective: Whether defects were asked for (then ``defects`` is never empty).
        center_xy: Centre of the part in pixels.
        radius_px: Outer radius of the part in pixels.
        rotation_deg: Rotation of the part, counter-clockwise as seen in the image, 0..360.
        defects: The defects drawn, in drawing order.
    """

    defective: bool
    center_xy: tuple[float, float]
    radius_px: float
    rotation_deg: float
    defects: tuple[Defect, ...]


@dataclass(frozen=True, slots=True)
class _Photometry:
    gain: float
    contrast: float
    offset: float
    illumination_slope: float  # brightness change across one radius, from uneven lighting
    illumination_angle_rad: float
    blur_sigma_px: float
    noise_sigma: float  # in gray levels


def render_part(
    rng: np.random.Generator, *, defective: bool, size: int = 1024
) -> tuple[np.ndarray, PartSpec]:
    """Render one part.

    The generator is split into independent streams for pose, exposure, defects and noise, so
    calling this twice with generators in the same state and ``defective=False`` / ``True``
    gives the same part, once clean and once with defects; the two images differ only around
    the defects' bounding boxes.

    Args:
        rng: Source of all randomness; advanced by a fixed amount.
        defective: Draw one to three defects on the part.
        size: Width and height of the square image in pixels (at least 32).

    Returns:
        The image (``size`` x ``size``, uint8, black outside the part) and what was drawn.

    Raises:
        ValueError: If ``size`` is below 32.
    """
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    pose_rng, photo_rng, defect_rng, noise_rng = (
        np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=4)
    )
    pose = _draw_pose(pose_rng, size)
    photometry = _draw_photometry(photo_rng, size)
    base, mask = _render_clean(pose, size)
    defects: tuple[Defect, ...] = ()
    if defective:
        defects = apply_defects(defect_rng, base, mask, pose)
    image = _finish(base, mask, pose, photometry, noise_rng)
    spec = PartSpec(
        defective=defective,
        center_xy=pose.center_xy,
        radius_px=pose.radius_px,
        rotation_deg=pose.rotation_deg,
        defects=defects,
    )
    return image, spec


def part_image(seed: int, index: int, *, defective: bool, size: int = 1024) -> tuple[np.ndarray, PartSpec]:
    """The part number ``index`` of a seeded series, independent of any other call.

    Args:
        seed: Series seed.
        index: Position in the series (non-negative).
        defective: Whether the part carries defects. Good and bad parts at one index are
            unrelated parts.
        size: Width and height of the image in pixels.

    Returns:
        The image and what was drawn, as ``render_part``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, int(defective)]))
    return render_part(rng, defective=defective, size=size)


def _draw_pose(rng: np.random.Generator, size: int) -> Pose:
    radius_px = _RADIUS_FRAC * size * rng.uniform(*_SCALE_RANGE)
    # Small images have only a pixel or two of margin: shrink the offset there so the
    # antialiased, blurred edge never reaches the frame.
    edge_reach_px = 2.0 + 4.0 * _MAX_BLUR_SIGMA_FRAC * size
    max_offset_px = max(0.0, min(_MAX_OFFSET_FRAC * size, (size - 1) / 2.0 - radius_px - edge_reach_px))
    # Uniform over a disc, so the offset has no preferred direction.
    offset_px = max_offset_px * math.sqrt(rng.uniform())
    offset_angle = rng.uniform(0.0, 2.0 * math.pi)
    center = (
        (size - 1) / 2.0 + offset_px * math.cos(offset_angle),
        (size - 1) / 2.0 + offset_px * math.sin(offset_angle),
    )
    return Pose(center_xy=center, radius_px=radius_px, rotation_deg=rng.uniform(0.0, 360.0))


def _draw_photometry(rng: np.random.Generator, size: int) -> _Photometry:
    return _Photometry(
        gain=rng.uniform(0.8, 1.15),
        contrast=rng.uniform(0.85, 1.2),
        offset=rng.uniform(-0.04, 0.04),
        illumination_slope=rng.uniform(0.0, 0.15),
        illumination_angle_rad=rng.uniform(0.0, 2.0 * math.pi),
        # Relative to the image size so a 128 px part is as sharp as a 1024 px one downscaled.
        blur_sigma_px=rng.uniform(0.0, 1.0) * _MAX_BLUR_SIGMA_FRAC * size,
        noise_sigma=rng.uniform(0.5, 3.0),
    )


def _ridge(r: np.ndarray, r0: float, r1: float) -> np.ndarray:
    """A rounded ridge over ``r0..r1``: 0 at both ends, 1 in the middle."""
    t = np.clip((r - r0) / (r1 - r0), 0.0, 1.0)
    return np.sin(np.pi * t).astype(np.float32)


@lru_cache(maxsize=4)
def _template(radius_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Height and albedo of the unrotated part, ``radius_px`` in radius, centred in a square.

    The design is one fixed product, as on a real line; only pose and exposure vary. Cached
    because it is the same for every part of a size; the arrays are read-only.
    """
    pad = 4 + radius_px // 32
    half = radius_px + pad
    side = 2 * half + 1
    c = float(half)
    grid = (np.arange(side, dtype=np.float32) - c) / radius_px
    u, v = grid[None, :], grid[:, None]
    r = np.sqrt(u * u + v * v)

    # Radial profile, outside in: rounded rim, dark groove, flat band, rounded inner ring and a
    # recessed inner field. Heights are in arbitrary units; _RELIEF scales them.
    zones = [r <= 0.58, r <= 0.64, r <= 0.865, r <= 0.90, r <= 1.0]
    height: np.ndarray = np.select(zones, [0.15, 0.45, 0.45, 0.1, 0.45], 0.0).astype(np.float32)
    albedo: np.ndarray = np.select(zones, [0.40, 0.80, 0.60, 0.28, 0.82], 0.0).astype(np.float32)
    height += 0.9 * _ridge(r, 0.895, 1.0) + 0.6 * _ridge(r, 0.575, 0.645)

    # Lathe marks: fine concentric rings of slightly varying brightness, as on turned metal.
    lathe_rng = np.random.default_rng(20240611)
    lathe = lathe_rng.standard_normal(2 * side).astype(np.float32)
    lathe = np.convolve(lathe, np.ones(3, np.float32) / 3.0, mode="same")
    ring_index = np.minimum((r * radius_px * 1.5).astype(np.int32), lathe.size - 1)
    turned = (r <= 0.58) | ((r > 0.645) & (r <= 0.865))
    albedo *= np.where(turned, 1.0 + 0.08 * lathe[ring_index], 1.0).astype(np.float32)

    # Raised features are drawn with cv2 into a separate layer so they sit on top of the
    # radial profile whatever zone they cross.
    raised = np.zeros_like(height)
    raised_albedo = np.zeros_like(albedo)

    def to_px(uv: npt.ArrayLike) -> np.ndarray:
        return to_fixed(np.asarray(uv) * radius_px + c)

    def stroke(px_width: float) -> int:
        return max(1, round(px_width * radius_px))

    # Marks around the band; the one at the top is a triangle so the part has an orientation.
    for k in range(24):
        angle = 2.0 * math.pi * k / 24.0 - math.pi / 2.0
        direction = np.array([math.cos(angle), math.sin(angle)])
        if k == 0:
            normal = np.array([-direction[1], direction[0]])
            tri = np.array(
                [direction * 0.69 + normal * 0.07, direction * 0.69 - normal * 0.07, direction * 0.83]
            )
            cv2.fillPoly(raised, [to_px(tri)], 0.35, cv2.LINE_AA, FIXED_POINT_SHIFT)
            cv2.fillPoly(raised_albedo, [to_px(tri)], 0.85, cv2.LINE_AA, FIXED_POINT_SHIFT)
            continue
        p0, p1 = to_px(direction * 0.71), to_px(direction * 0.80)
        for layer, value in ((raised, 0.3), (raised_albedo, 0.78)):
            cv2.line(layer, tuple(p0), tuple(p1), value, stroke(0.035), cv2.LINE_AA, FIXED_POINT_SHIFT)

    # Emblem: two crossed elliptical rings, three spokes and a domed hub.
    centre = to_px([0.0, 0.0])
    for tilt_deg in (30.0, -30.0):
        axes = tuple(to_fixed(np.array([0.50, 0.22]) * radius_px))
        for layer, value in ((raised, 0.55), (raised_albedo, 0.82)):
            cv2.ellipse(
                layer,
                tuple(centre),
                axes,
                tilt_deg,
                0.0,
                360.0,
                value,
                stroke(0.05),
                cv2.LINE_AA,
                FIXED_POINT_SHIFT,
            )
    for k in range(3):
        angle = 2.0 * math.pi * k / 3.0 + math.pi / 2.0
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        spoke = np.array(
            [
                direction * 0.1 + normal * 0.06,
                direction * 0.57 + normal * 0.025,
                direction * 0.57 - normal * 0.025,
                direction * 0.1 - normal * 0.06,
            ]
        )
        cv2.fillPoly(raised, [to_px(spoke)], 0.4, cv2.LINE_AA, FIXED_POINT_SHIFT)
        cv2.fillPoly(raised_albedo, [to_px(spoke)], 0.75, cv2.LINE_AA, FIXED_POINT_SHIFT)
    hub = 0.14
    dome = np.sqrt(np.clip(1.0 - (r / hub) ** 2, 0.0, 1.0)).astype(np.float32)
    raised = np.maximum(raised, 0.4 + 0.5 * dome, where=r <= hub, out=raised)
    raised_albedo = np.where(r <= hub, np.float32(0.85), raised_albedo)

    has_raised = raised_albedo > 0
    height = np.where(has_raised, np.maximum(height, 0.15) + raised, height)
    albedo = np.where(has_raised, np.maximum(albedo, raised_albedo), albedo).astype(np.float32)

    # Soft height edges become bevels once shaded; without them edges would be 1 px lines.
    height = cv2.GaussianBlur(height, (0, 0), max(0.6, 0.012 * radius_px))
    albedo = cv2.GaussianBlur(albedo, (0, 0), 0.5)
    height.setflags(write=False)
    albedo.setflags(write=False)
    return height, albedo


def _render_clean(pose: Pose, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shaded part in 0..~1 (float32) and its coverage mask (1 on the part, 0 off it)."""
    template_radius_px = math.ceil(_TEMPLATE_RADIUS_FRAC * size)
    height_t, albedo_t = _template(template_radius_px)
    c_t = (height_t.shape[0] - 1) / 2.0
    scale = pose.radius_px / template_radius_px
    cx, cy = pose.center_xy
    matrix = cv2.getRotationMatrix2D((c_t, c_t), pose.rotation_deg, scale)
    matrix[0, 2] += cx - c_t
    matrix[1, 2] += cy - c_t
    dsize = (size, size)
    height = cv2.warpAffine(height_t, matrix, dsize, flags=cv2.INTER_LINEAR, borderValue=0.0)
    albedo = cv2.warpAffine(albedo_t, matrix, dsize, flags=cv2.INTER_LINEAR, borderValue=0.0)

    # Surface normals from the height map; gradients per unit of radius so the look does not
    # depend on the image size.
    grad_scale = _RELIEF * pose.radius_px / 8.0
    nx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=-grad_scale)
    ny = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=-grad_scale)
    inv_norm = 1.0 / np.sqrt(nx * nx + ny * ny + 1.0)
    azimuth = math.radians(_LIGHT_AZIMUTH_DEG)
    elevation = math.radians(_LIGHT_ELEVATION_DEG)
    lx = math.cos(elevation) * math.cos(azimuth)
    ly = math.cos(elevation) * math.sin(azimuth)
    lz = math.sin(elevation)
    lambert = (nx * lx + ny * ly + lz) * inv_norm
    np.maximum(lambert, 0.0, out=lambert)
    # Blinn highlight with the camera straight above: the half vector of light and view.
    hx, hy, hz = lx, ly, lz + 1.0
    h_norm = math.sqrt(hx * hx + hy * hy + hz * hz)
    spec = (nx * (hx / h_norm) + ny * (hy / h_norm) + hz / h_norm) * inv_norm
    np.maximum(spec, 0.0, out=spec)
    for _ in range(5):  # spec ** 32 by squaring: much faster than np.power
        spec *= spec
    base = albedo * (0.25 + 0.75 * lambert / lz) + 0.45 * spec

    mask_u8 = np.zeros((size, size), np.uint8)
    cv2.circle(
        mask_u8,
        tuple(to_fixed([cx, cy])),
        int(round(pose.radius_px * FIXED_POINT_ONE)),
        255,
        -1,
        cv2.LINE_AA,
        FIXED_POINT_SHIFT,
    )
    mask = mask_u8.astype(np.float32) * (1.0 / 255.0)
    return base, mask


def _finish(
    base: np.ndarray, mask: np.ndarray, pose: Pose, photometry: _Photometry, noise_rng: np.random.Generator
) -> np.ndarray:
    """Exposure, uneven lighting, focus and noise, then quantise to uint8."""
    size = base.shape[0]
    cx, cy = pose.center_xy
    coords = np.arange(size, dtype=np.float32)
    cos_a, sin_a = math.cos(photometry.illumination_angle_rad), math.sin(photometry.illumination_angle_rad)
    ramp_x = (coords - cx) * (cos_a * photometry.illumination_slope / pose.radius_px)
    ramp_y = (coords - cy) * (sin_a * photometry.illumination_slope / pose.radius_px)
    illumination = 1.0 + ramp_x[None, :] + ramp_y[:, None]

    image: np.ndarray = (base - 0.5) * photometry.contrast + 0.5
    image *= illumination
    image = image * photometry.gain + photometry.offset
    np.clip(image, 0.0, 1.0, out=image)
    image *= mask  # exactly 0 off the part, and in cut-away regions
    coverage: np.ndarray = mask
    if photometry.blur_sigma_px >= 0.3:
        image = cv2.GaussianBlur(image, (0, 0), photometry.blur_sigma_px)
        coverage = cv2.GaussianBlur(mask, (0, 0), photometry.blur_sigma_px)
    image *= 255.0
    noise = noise_rng.standard_normal(image.shape, dtype=np.float32)
    # Noise only where there is part, so the background stays exactly 0 for the tests and for
    # anyone thresholding it.
    image += noise * (photometry.noise_sigma * coverage)
    np.clip(image, 0.0, 255.0, out=image)
    return np.rint(image).astype(np.uint8)
