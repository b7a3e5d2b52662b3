"""Seeded synthetic parts for the built-in demo and for tests.

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
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from core.common.fileio import write_atomic

__all__ = [
    "DEFECT_KINDS",
    "Defect",
    "PartSpec",
    "feed_hot_folder",
    "generate_dataset",
    "part_image",
    "render_part",
]

DEFECT_KINDS: tuple[str, ...] = ("blotch", "scratch", "corrupted", "missing")

BBox = tuple[int, int, int, int]

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

_FIXED_POINT_SHIFT = 4  # cv2 drawing with 1/16 pixel precision so small sizes stay round
_FIXED_POINT_ONE = 1 << _FIXED_POINT_SHIFT

_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_FEEDER_LABEL_SALT = 2  # SeedSequence key for the feeder's good/bad draw; 0 and 1 are images


@dataclass(frozen=True, slots=True)
class Defect:
    """One defect drawn on a part.

    Attributes:
        kind: One of ``DEFECT_KINDS``.
        bbox: ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, around the pixels the
            defect changed before blur (blur spreads it by a pixel or two at 1024).
        variant: Finer description, e.g. ``"dark"`` or ``"bright"`` for a scratch, ``"noise"``,
            ``"shift"``, ``"pixelate"`` or ``"tear"`` for a corrupted block.
    """

    kind: str
    bbox: BBox
    variant: str = ""


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
class _Pose:
    center_xy: tuple[float, float]
    radius_px: float
    rotation_deg: float


@dataclass(frozen=True, slots=True)
class _Photometry:
    gain: float
    contrast: float
    offset: float
    illumination_slope: float  # brightness change across one radius, from uneven lighting
    illumination_angle_rad: float
    blur_sigma_px: float
    noise_sigma: float  # in gray levels


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
        defects = _apply_defects(defect_rng, base, mask, pose)
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
            write_atomic(path, _encode_png(image), fsync=False)
            written.append(path)
            if progress is not None:
                progress(len(written), total)
    return written


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
        tmp = inbox / f".{name}.tmp"
        tmp.write_bytes(_encode_png(image))
        os.replace(tmp, inbox / name)
        written += 1
    return written


# --------------------------------------------------------------------------------------------
# Drawing the clean part
# --------------------------------------------------------------------------------------------


def _draw_pose(rng: np.random.Generator, size: int) -> _Pose:
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
    return _Pose(center_xy=center, radius_px=radius_px, rotation_deg=rng.uniform(0.0, 360.0))


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


def _fixed(points: npt.ArrayLike) -> np.ndarray:
    """Pixel coordinates as cv2's fixed-point integers (see ``_FIXED_POINT_SHIFT``)."""
    return np.round(np.asarray(points, dtype=np.float64) * _FIXED_POINT_ONE).astype(np.int32)


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
    height = np.select(zones, [0.15, 0.45, 0.45, 0.1, 0.45], 0.0).astype(np.float32)
    albedo = np.select(zones, [0.40, 0.80, 0.60, 0.28, 0.82], 0.0).astype(np.float32)
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
        return _fixed(np.asarray(uv) * radius_px + c)

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
            cv2.fillPoly(raised, [to_px(tri)], 0.35, cv2.LINE_AA, _FIXED_POINT_SHIFT)
            cv2.fillPoly(raised_albedo, [to_px(tri)], 0.85, cv2.LINE_AA, _FIXED_POINT_SHIFT)
            continue
        p0, p1 = to_px(direction * 0.71), to_px(direction * 0.80)
        for layer, value in ((raised, 0.3), (raised_albedo, 0.78)):
            cv2.line(layer, tuple(p0), tuple(p1), value, stroke(0.035), cv2.LINE_AA, _FIXED_POINT_SHIFT)

    # Emblem: two crossed elliptical rings, three spokes and a domed hub.
    centre = to_px([0.0, 0.0])
    for tilt_deg in (30.0, -30.0):
        axes = tuple(_fixed(np.array([0.50, 0.22]) * radius_px))
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
                _FIXED_POINT_SHIFT,
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
        cv2.fillPoly(raised, [to_px(spoke)], 0.4, cv2.LINE_AA, _FIXED_POINT_SHIFT)
        cv2.fillPoly(raised_albedo, [to_px(spoke)], 0.75, cv2.LINE_AA, _FIXED_POINT_SHIFT)
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


def _render_clean(pose: _Pose, size: int) -> tuple[np.ndarray, np.ndarray]:
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
        tuple(_fixed([cx, cy])),
        int(round(pose.radius_px * _FIXED_POINT_ONE)),
        255,
        -1,
        cv2.LINE_AA,
        _FIXED_POINT_SHIFT,
    )
    mask = mask_u8.astype(np.float32) * (1.0 / 255.0)
    return base, mask


def _finish(
    base: np.ndarray, mask: np.ndarray, pose: _Pose, photometry: _Photometry, noise_rng: np.random.Generator
) -> np.ndarray:
    """Exposure, uneven lighting, focus and noise, then quantise to uint8."""
    size = base.shape[0]
    cx, cy = pose.center_xy
    coords = np.arange(size, dtype=np.float32)
    cos_a, sin_a = math.cos(photometry.illumination_angle_rad), math.sin(photometry.illumination_angle_rad)
    ramp_x = (coords - cx) * (cos_a * photometry.illumination_slope / pose.radius_px)
    ramp_y = (coords - cy) * (sin_a * photometry.illumination_slope / pose.radius_px)
    illumination = 1.0 + ramp_x[None, :] + ramp_y[:, None]

    image = (base - 0.5) * photometry.contrast + 0.5
    image *= illumination
    image = image * photometry.gain + photometry.offset
    np.clip(image, 0.0, 1.0, out=image)
    image *= mask  # exactly 0 off the part, and in cut-away regions
    coverage = mask
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


# --------------------------------------------------------------------------------------------
# Defects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Roi:
    """A rectangle of the image to draw a defect in, clipped to the image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def around(cls, xs: np.ndarray, ys: np.ndarray, pad_px: float, size: int) -> _Roi:
        return cls(
            max(0, int(math.floor(float(np.min(xs)) - pad_px))),
            max(0, int(math.floor(float(np.min(ys)) - pad_px))),
            min(size, int(math.ceil(float(np.max(xs)) + pad_px)) + 1),
            min(size, int(math.ceil(float(np.max(ys)) + pad_px)) + 1),
        )

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


class _Canvas:
    """The clean part being damaged, with what is needed to keep defects on the part."""

    def __init__(self, base: np.ndarray, mask: np.ndarray, pose: _Pose) -> None:
        self.base = base
        self.mask = mask
        self.pose = pose
        self.size = base.shape[0]
        self.taken: list[BBox] = []

    def random_point(self, rng: np.random.Generator, max_radius_frac: float) -> tuple[float, float]:
        r = self.pose.radius_px * max_radius_frac * math.sqrt(rng.uniform())
        angle = rng.uniform(0.0, 2.0 * math.pi)
        cx, cy = self.pose.center_xy
        return cx + r * math.cos(angle), cy + r * math.sin(angle)

    def disc(self, roi: _Roi, radius_frac: float) -> np.ndarray:
        """uint8 mask of the part disc shrunk to ``radius_frac`` of its radius, within ``roi``."""
        out = np.zeros(roi.shape, np.uint8)
        cx, cy = self.pose.center_xy
        centre = _fixed([cx - roi.x0, cy - roi.y0])
        cv2.circle(
            out,
            tuple(centre),
            int(round(self.pose.radius_px * radius_frac * _FIXED_POINT_ONE)),
            255,
            -1,
            cv2.LINE_8,
            _FIXED_POINT_SHIFT,
        )
        return out

    def free(self, bbox: BBox) -> bool:
        """True when ``bbox`` keeps a gap to every defect drawn so far."""
        gap = max(2, self.size // 128)
        x0, y0, x1, y1 = bbox
        return all(
            x1 + gap <= a0 or a1 + gap <= x0 or y1 + gap <= b0 or b1 + gap <= y0
            for a0, b0, a1, b1 in self.taken
        )


def _bbox_in(local_mask: np.ndarray, roi: _Roi) -> BBox | None:
    x, y, w, h = cv2.boundingRect(local_mask)
    if w == 0 or h == 0:
        return None
    return roi.x0 + x, roi.y0 + y, roi.x0 + x + w, roi.y0 + y + h


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Sizes spread evenly over scales, so there are as many small defects as large ones."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _wobbly_outline(rng: np.random.Generator, radius_px: float, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """x and y offsets of an irregular closed blob outline around (0, 0)."""
    angles = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    radii = np.ones(n)
    for harmonic in range(2, 6):
        radii += (
            rng.uniform(0.0, 0.35)
            / math.sqrt(harmonic)
            * np.cos(harmonic * angles + rng.uniform(0.0, 2.0 * math.pi))
        )
    radii = np.maximum(radii, 0.35) * radius_px
    return radii * np.cos(angles), radii * np.sin(angles)


def _blotch(rng: np.random.Generator, canvas: _Canvas) -> Defect | None:
    radius = canvas.pose.radius_px * _log_uniform(rng, 0.04, 0.24)
    cx, cy = canvas.random_point(rng, 0.92)
    dx, dy = _wobbly_outline(rng, radius)
    xs, ys = cx + dx, cy + dy
    edge_sigma = max(0.5, 0.08 * radius)
    roi = _Roi.around(xs, ys, 3.0 * edge_sigma + 2.0, canvas.size)
    local = np.zeros(roi.shape, np.uint8)
    cv2.fillPoly(
        local, [_fixed(np.stack([xs - roi.x0, ys - roi.y0], axis=1))], 255, cv2.LINE_AA, _FIXED_POINT_SHIFT
    )
    # Keep the stain off the part's edge so it is always on metal.
    soft = cv2.GaussianBlur(local.astype(np.float32) * (1.0 / 255.0), (0, 0), edge_sigma)
    # Keep the stain off the part's edge so it is always on metal, and cut the blur's faint
    # tail so the bounding box holds every pixel the stain touched.
    soft[canvas.disc(roi, 0.97) == 0] = 0.0
    soft[soft < 0.02] = 0.0
    bbox = _bbox_in((soft > 0).astype(np.uint8), roi)
    if bbox is None or not canvas.free(bbox):
        return None
    # Mottled darkness: a coarse random field, stretched over the blob, reads as a stain.
    mottle = cv2.resize(
        rng.uniform(0.8, 1.0, (4, 4)).astype(np.float32), roi.shape[::-1], interpolation=cv2.INTER_CUBIC
    )
    depth = rng.uniform(0.75, 1.0)
    canvas.base[roi.slices] *= 1.0 - np.clip(depth * mottle, 0.0, 1.0) * soft
    return Defect("blotch", bbox, "black" if depth > 0.9 else "dark")


def _scratch(rng: np.random.Generator, canvas: _Canvas) -> Defect | None:
    radius = canvas.pose.radius_px
    length = radius * _log_uniform(rng, 0.35, 1.4)
    x0, y0 = canvas.random_point(rng, 0.85)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    bend = rng.uniform(-0.3, 0.3) * length
    # A quadratic Bezier: straight scratches and gentle arcs from one formula.
    t = np.linspace(0.0, 1.0, 33)[:, None]
    start = np.array([x0, y0])
    end = start + length * np.array([math.cos(angle), math.sin(angle)])
    control = (start + end) / 2.0 + bend * np.array([-math.sin(angle), math.cos(angle)])
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    strands = 1 if rng.uniform() < 0.7 else int(rng.integers(2, 5))
    thickness = max(1, round(canvas.size * rng.uniform(0.004, 0.010)))
    spacing = 2.5 * thickness
    normal = np.array([-math.sin(angle), math.cos(angle)])
    offsets = [normal * spacing * (k - (strands - 1) / 2.0) for k in range(strands)]
    all_pts = np.concatenate([curve + o for o in offsets])
    roi = _Roi.around(all_pts[:, 0], all_pts[:, 1], thickness + 2.0, canvas.size)
    local = np.zeros(roi.shape, np.uint8)
    origin = np.array([roi.x0, roi.y0])
    for o in offsets:
        pts = _fixed(curve + o - origin)
        cv2.polylines(local, [pts], False, 255, thickness, cv2.LINE_AA, _FIXED_POINT_SHIFT)
    local = cv2.bitwise_and(local, canvas.disc(roi, 0.97))
    if cv2.countNonZero(local) < 4 * thickness * max(4, canvas.size // 64):
        return None  # mostly off the part: too short to count as a scratch
    bbox = _bbox_in(local, roi)
    if bbox is None or not canvas.free(bbox):
        return None
    alpha = local.astype(np.float32) * (1.0 / 255.0)
    patch = canvas.base[roi.slices]
    under = float(np.mean(patch[local > 0]))
    # Pick the polarity that contrasts with the metal underneath, most of the time.
    dark = rng.uniform() < (0.75 if under > 0.45 else 0.25)
    target = rng.uniform(0.0, 0.1) if dark else rng.uniform(1.0, 1.2)
    patch += alpha * (target - patch)
    return Defect("scratch", bbox, "dark" if dark else "bright")


def _corrupted(rng: np.random.Generator, canvas: _Canvas) -> Defect | None:
    radius = canvas.pose.radius_px
    side = radius * _log_uniform(rng, 0.14, 0.5)
    aspect = _log_uniform(rng, 0.5, 2.0)
    w = max(4, round(side * math.sqrt(aspect)))
    h = max(4, round(side / math.sqrt(aspect)))
    half_diag = 0.5 * math.hypot(w, h)
    reach = 0.93 * radius - half_diag  # every corner of the block stays on the part
    if reach <= 0:
        return None
    cx, cy = canvas.random_point(rng, reach / radius)
    x0, y0 = round(cx - w / 2.0), round(cy - h / 2.0)
    bbox = (x0, y0, x0 + w, y0 + h)
    if not canvas.free(bbox):
        return None
    block = canvas.base[y0 : y0 + h, x0 : x0 + w]
    variant = str(rng.choice(["noise", "shift", "pixelate", "tear"]))
    if variant == "noise":
        block[...] = rng.uniform(0.0, 1.0, (h, w)).astype(np.float32)
    elif variant == "shift":
        # Copy of another place on the image, as when a decoder repeats stale data.
        distance = rng.uniform(0.5, 1.2) * max(w, h)
        direction = rng.uniform(0.0, 2.0 * math.pi)
        sx = int(np.clip(round(x0 + distance * math.cos(direction)), 0, canvas.size - w))
        sy = int(np.clip(round(y0 + distance * math.sin(direction)), 0, canvas.size - h))
        if abs(sx - x0) + abs(sy - y0) < max(w, h) // 3:
            return None
        block[...] = canvas.base[sy : sy + h, sx : sx + w] * canvas.mask[sy : sy + h, sx : sx + w]
        # Stale data rarely matches the exposure around it; the step makes the seam visible
        # even where the copy comes from a similar-looking place on the ring.
        block *= np.float32(rng.choice([rng.uniform(0.5, 0.75), rng.uniform(1.25, 1.5)]))
    elif variant == "pixelate":
        cell = max(2, round(min(w, h) / rng.uniform(3.0, 6.0)))
        small = cv2.resize(block, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        levels = float(rng.integers(3, 6))  # heavy quantisation, like a broken codec
        block[...] = np.round(coarse * levels) / levels
    else:  # tear: bands of rows slid sideways, as from a lost line sync
        y = 0
        source = block.copy()
        while y < h:
            band = max(1, round(h * rng.uniform(0.06, 0.2)))
            shift = int(rng.integers(-w // 2, w // 2 + 1))
            block[y : y + band] = np.roll(source[y : y + band], shift, axis=1)
            y += band
        block *= np.float32(rng.uniform(0.6, 1.4))
    return Defect("corrupted", bbox, variant)


def _missing(rng: np.random.Generator, canvas: _Canvas) -> Defect | None:
    cx, cy = canvas.pose.center_xy
    radius = canvas.pose.radius_px
    variant = str(rng.choice(["sector", "bite", "chord"]))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    outer = 1.1 * radius  # beyond the edge, so the cut opens onto the background
    if variant == "sector":
        span = math.radians(rng.uniform(12.0, 55.0))
        inner = radius * rng.uniform(0.45, 0.85)
        arc = np.linspace(angle, angle + span, 24)
        rs = np.concatenate([np.full(arc.size, outer), np.full(arc.size, inner)])
        angles = np.concatenate([arc, arc[::-1]])
        xs, ys = cx + rs * np.cos(angles), cy + rs * np.sin(angles)
    elif variant == "bite":
        bite_r = radius * _log_uniform(rng, 0.08, 0.3)
        distance = radius * rng.uniform(0.9, 1.02)
        dx, dy = _wobbly_outline(rng, bite_r, 32)
        xs = cx + distance * math.cos(angle) + dx
        ys = cy + distance * math.sin(angle) + dy
    else:  # chord: a straight flat broken off
        depth = radius * rng.uniform(0.1, 0.35)
        d = radius - depth
        half = math.sqrt(max(outer**2 - d**2, 0.0))
        ux, uy = math.cos(angle), math.sin(angle)
        corners = [(d, -half), (d, half), (outer, half), (outer, -half)]
        xs = np.array([cx + a * ux - b * uy for a, b in corners])
        ys = np.array([cy + a * uy + b * ux for a, b in corners])
    roi = _Roi.around(xs, ys, 2.0, canvas.size)
    local = np.zeros(roi.shape, np.uint8)
    cv2.fillPoly(
        local, [_fixed(np.stack([xs - roi.x0, ys - roi.y0], axis=1))], 255, cv2.LINE_AA, _FIXED_POINT_SHIFT
    )
    local = cv2.bitwise_and(local, canvas.disc(roi, 1.0))
    bbox = _bbox_in(local, roi)
    if bbox is None or not canvas.free(bbox):
        return None
    canvas.mask[roi.slices] *= 1.0 - local.astype(np.float32) * (1.0 / 255.0)
    return Defect("missing", bbox, variant)


_DRAWERS: dict[str, Callable[[np.random.Generator, _Canvas], Defect | None]] = {
    "blotch": _blotch,
    "scratch": _scratch,
    "corrupted": _corrupted,
    "missing": _missing,
}


def _apply_defects(
    rng: np.random.Generator, base: np.ndarray, mask: np.ndarray, pose: _Pose
) -> tuple[Defect, ...]:
    """Draw one to three defects into ``base`` and ``mask`` in place; never overlapping."""
    canvas = _Canvas(base, mask, pose)
    wanted = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    defects: list[Defect] = []
    for _ in range(wanted):
        kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
        for _attempt in range(20):
            defect = _DRAWERS[kind](rng, canvas)
            if defect is not None:
                defects.append(defect)
                canvas.taken.append(defect.bbox)
                break
    if not defects:
        # Unreachable in practice (a first defect always has the part to itself), but a bad
        # part without a defect would poison a data set, so make sure.
        defect = None
        while defect is None:
            defect = _blotch(rng, canvas)
        defects.append(defect)
    return tuple(defects)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _encode_png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image, _PNG_PARAMS)
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a PNG")
    return buffer.tobytes()


def _feeder_part_is_bad(seed: int, index: int, bad_fraction: float) -> bool:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _FEEDER_LABEL_SALT]))
    return bool(rng.uniform() < bad_fraction)
