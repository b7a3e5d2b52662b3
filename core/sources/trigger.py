"""Software triggers: which frames of a free-running stream become parts.

``PresenceTrigger`` takes a part when one is present and centred in the frame, once per part: the
part is bright on a dark background, so the frame is thresholded (Otsu, on a small copy) and the
largest bright blob is the part. While a part crosses the frame the trigger keeps the frame in
which it was closest to the centre and fires when the part stops getting closer (it has passed
the centre, or it stands still). It re-arms only after the frame has been empty for a few frames,
so a part that stops under the camera is taken once, not once per frame. A part that crossed the
frame without ever coming within ``centre_tolerance`` of the centre is reported as a miss (a
not-inspected part), so no part that the camera saw goes unrecorded.

``EveryFrame`` makes every frame a part (a camera with a hardware trigger, or tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Shot:
    """A frame that becomes a part. ``error`` set: a part was seen but cannot be inspected."""

    image: np.ndarray  # uint8 grayscale, full resolution
    frame_no: int
    error: str | None = None


class Trigger(Protocol):
    def feed(self, gray: np.ndarray, frame_no: int) -> Shot | None:
        """Look at one frame; a ``Shot`` when this frame (or a kept earlier one) is a part."""
        ...

    def flush(self) -> Shot | None:
        """The stream was interrupted: the part being followed, if any, as it was last seen."""
        ...


class EveryFrame:
    """Every frame is a part."""

    def feed(self, gray: np.ndarray, frame_no: int) -> Shot | None:
        return Shot(gray, frame_no)

    def flush(self) -> Shot | None:
        return None


@dataclass(frozen=True, slots=True)
class Blob:
    """The part as the trigger sees it, in fractions of the frame."""

    offset: float  # distance of its centre from the frame centre: max(|dx| / W, |dy| / H)
    area: float  # share of the frame
    inside: bool  # wholly in view (not touching the border)


class PresenceTrigger:
    """One shot per part that passes (or stops) under the camera.

    Args:
        centre_tolerance: How far from the centre a part may be, as a fraction of the frame.
        min_area, max_area: A part covers this share of the frame (smaller: noise or dust;
            larger: lighting changed, not a part).
        min_contrast: Grey levels between the part and the background, at least.
        settle_frames: Frames without getting closer to the centre before firing.
        rearm_frames: Empty frames before the next part can be taken.
        analysis_width: Frames are shrunk to this width to look for the part (speed).
    """

    def __init__(
        self,
        *,
        centre_tolerance: float = 0.12,
        min_area: float = 0.01,
        max_area: float = 0.7,
        min_contrast: float = 30.0,
        settle_frames: int = 2,
        rearm_frames: int = 2,
        analysis_width: int = 160,
    ) -> None:
        self.centre_tolerance = centre_tolerance
        self.min_area = min_area
        self.max_area = max_area
        self.min_contrast = min_contrast
        self.settle_frames = max(1, settle_frames)
        self.rearm_frames = max(1, rearm_frames)
        self.analysis_width = analysis_width
        self.reset()

    def reset(self) -> None:
        self._state = "armed"  # armed -> tracking -> fired -> armed
        self._best: tuple[float, np.ndarray, int] | None = None
        self._no_closer = 0
        self._absent = 0

    def flush(self) -> Shot | None:
        if self._state == "tracking" and self._best is not None:
            return self._conclude(left=True)
        self.reset()
        return None

    def find(self, gray: np.ndarray) -> Blob | None:
        """The largest bright blob that could be a part, or None."""
        height, width = gray.shape[:2]
        scale = min(1.0, self.analysis_width / width)
        small = gray
        if scale < 1.0:
            small = cv2.resize(
                gray,
                (max(8, round(width * scale)), max(8, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
        level, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count < 2:
            return None
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        h, w = small.shape[:2]
        area = stats[biggest, cv2.CC_STAT_AREA] / float(h * w)
        if not self.min_area <= area <= self.max_area:
            return None
        inside_mask = labels == biggest
        contrast = float(small[inside_mask].mean()) - float(small[~inside_mask].mean())
        if contrast < self.min_contrast:
            return None
        x, y, bw, bh = (int(v) for v in stats[biggest, :4])
        inside = x > 0 and y > 0 and x + bw < w and y + bh < h
        cx, cy = centroids[biggest]
        offset = max(abs(cx - (w - 1) / 2.0) / w, abs(cy - (h - 1) / 2.0) / h)
        return Blob(offset=float(offset), area=float(area), inside=inside)

    def feed(self, gray: np.ndarray, frame_no: int) -> Shot | None:
        blob = self.find(gray)
        present = blob is not None and blob.inside
        if self._state == "fired":
            self._absent = 0 if present else self._absent + 1
            if self._absent >= self.rearm_frames:
                self.reset()
            return None
        if not present:
            if self._state == "tracking":
                self._absent += 1
                if self._absent >= self.rearm_frames:
                    return self._conclude(left=True)
            return None
        assert blob is not None
        self._absent = 0
        if self._state == "armed":
            self._state = "tracking"
            self._best = (blob.offset, gray.copy(), frame_no)
            self._no_closer = 0
            return None
        assert self._best is not None
        if blob.offset < self._best[0] - 1e-4:
            self._best = (blob.offset, gray.copy(), frame_no)
            self._no_closer = 0
        else:
            self._no_closer += 1
        # Off-centre and no closer: keep watching; it may still come, or it leaves (a miss).
        if self._no_closer >= self.settle_frames and self._best[0] <= self.centre_tolerance:
            return self._conclude(left=False)
        return None

    def _conclude(self, *, left: bool) -> Shot:
        assert self._best is not None
        offset, image, frame_no = self._best
        if left:
            self.reset()
        else:
            self._state, self._absent, self._best = "fired", 0, None
        if offset <= self.centre_tolerance:
            return Shot(image, frame_no)
        return Shot(
            image,
            frame_no,
            error=f"part passed off-centre ({offset:.0%} of the frame from the centre, tolerance "
            f"{self.centre_tolerance:.0%})",
        )


def make_trigger(name: str | None) -> Trigger:
    """``presence`` (default) or ``every-frame``."""
    if name in (None, "", "presence"):
        return PresenceTrigger()
    if name in ("every-frame", "every_frame", "all"):
        return EveryFrame()
    raise ValueError(f"unknown trigger {name!r}; use presence or every-frame")
