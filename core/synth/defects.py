"""The defect kinds a bad part can carry (blotch, scratch, corrupted block, missing piece) and how each is drawn.

Every drawer works in place on the clean part's float image and coverage mask, keeps its defect
on the part and apart from the defects drawn before it, and reports the pixels it changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from core.synth.geometry import FIXED_POINT_ONE, FIXED_POINT_SHIFT, BBox, Pose, to_fixed

__all__ = ["DEFECT_KINDS", "Defect", "apply_defects"]

DEFECT_KINDS: tuple[str, ...] = ("blotch", "scratch", "corrupted", "missing")


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

    def __init__(self, base: np.ndarray, mask: np.ndarray, pose: Pose) -> None:
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
        centre = to_fixed([cx - roi.x0, cy - roi.y0])
        cv2.circle(
            out,
            tuple(centre),
            int(round(self.pose.radius_px * radius_frac * FIXED_POINT_ONE)),
            255,
            -1,
            cv2.LINE_8,
            FIXED_POINT_SHIFT,
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
        local, [to_fixed(np.stack([xs - roi.x0, ys - roi.y0], axis=1))], 255, cv2.LINE_AA, FIXED_POINT_SHIFT
    )
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
    local: np.ndarray = np.zeros(roi.shape, np.uint8)
    origin = np.array([roi.x0, roi.y0])
    for o in offsets:
        pts = to_fixed(curve + o - origin)
        cv2.polylines(local, [pts], False, 255, thickness, cv2.LINE_AA, FIXED_POINT_SHIFT)
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
    local: np.ndarray = np.zeros(roi.shape, np.uint8)
    cv2.fillPoly(
        local, [to_fixed(np.stack([xs - roi.x0, ys - roi.y0], axis=1))], 255, cv2.LINE_AA, FIXED_POINT_SHIFT
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


def apply_defects(
    rng: np.random.Generator, base: np.ndarray, mask: np.ndarray, pose: Pose
) -> tuple[Defect, ...]:
    """Draw one to three defects into ``base`` and ``mask`` in place; never overlapping.

    Args:
        rng: Source of the defects' randomness.
        base: The shaded clean part (float32, 0..~1), damaged in place.
        mask: The part's coverage (1 on the part, 0 off it); missing pieces cut it in place.
        pose: Where the part lies, so defects stay on it.

    Returns:
        The defects drawn, in drawing order; never empty.
    """
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
