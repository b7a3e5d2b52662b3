"""Typed results that cross module and thread boundaries.

The glossary used everywhere: part, frame, inspection, score (= probability that the part is
defective, 0..1), threshold, verdict (good / bad / not inspected), heatmap, review, shift, station.
"""

from __future__ import annotations

import enum
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


class Verdict(enum.StrEnum):
    """Outcome of one part. ``NOT_INSPECTED`` always comes with a reason."""

    GOOD = "good"
    BAD = "bad"
    NOT_INSPECTED = "not_inspected"


def verdict_for(score: float, threshold: float) -> Verdict:
    """The verdict at a threshold: a part is bad when its score reaches the threshold."""
    return Verdict.BAD if score >= threshold else Verdict.GOOD


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_part_id() -> str:
    """A 26-character ULID: sorts by creation time and exists before any insert."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """One part as it arrives from a source, before inspection.

    ``image`` is the decoded 8-bit grayscale image (H x W, uint8), or None when decoding failed;
    then ``error`` says why and the part becomes a not-inspected row.
    """

    part_id: str = field(default_factory=new_part_id)
    source_ref: str  # file path, camera URL + frame number, ...
    arrived_at: datetime
    image: np.ndarray | None
    content_hash: str | None = None
    encoded: bytes | None = None  # the original bytes, kept for the log when available
    error: str | None = None


class Fired(enum.StrEnum):
    """Which opinion called a part bad: the classifier, the good-only anomaly model, or both."""

    CLASSIFIER = "classifier"
    ANOMALY = "anomaly"
    BOTH = "both"


def fired_for(
    score: float, threshold: float, anomaly_score: float | None, anomaly_threshold: float | None
) -> Fired | None:
    """Which check passed its threshold (None: neither, the part is good)."""
    classifier = score >= threshold
    anomaly = (
        anomaly_score is not None and anomaly_threshold is not None and anomaly_score >= anomaly_threshold
    )
    if classifier and anomaly:
        return Fired.BOTH
    if classifier:
        return Fired.CLASSIFIER
    return Fired.ANOMALY if anomaly else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Inspection:
    """What the model said about one image.

    With a good-only second opinion (``core.model.anomaly``) a part is bad when the classifier's
    score passes its threshold OR the anomaly score passes its own; ``fired`` says which.
    """

    score: float  # probability that the part is defective, 0..1
    threshold: float
    heatmap: np.ndarray  # Grad-CAM of the bad class, uint8 (H x W) at the model's input size
    latency_ms: float
    anomaly_score: float | None = None  # distance from good parts (no upper bound); None: no model
    anomaly_threshold: float | None = None
    anomaly_heatmap: np.ndarray | None = None  # uint8 (H x W); 128 = at the anomaly threshold

    @property
    def fired(self) -> Fired | None:
        return fired_for(self.score, self.threshold, self.anomaly_score, self.anomaly_threshold)

    @property
    def verdict(self) -> Verdict:
        return Verdict.GOOD if self.fired is None else Verdict.BAD

    @property
    def shown_heatmap(self) -> np.ndarray:
        """The map of whichever check fired (the anomaly map when only it did), else the Grad-CAM."""
        if self.fired is Fired.ANOMALY and self.anomaly_heatmap is not None:
            return self.anomaly_heatmap
        return self.heatmap


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One row of the visual log: a part and what was decided about it."""

    part_id: str
    station: str
    source_ref: str
    created_at: datetime  # UTC
    content_hash: str | None
    verdict: Verdict
    score: float | None
    threshold: float | None
    reason: str | None  # why a part was not inspected
    latency_ms: float | None
    model_hash: str | None
    image_path: str | None  # relative to the media root
    heatmap_path: str | None  # relative to the media root
    # The good-only second opinion (revision 0007); None for decisions without one.
    anomaly_score: float | None = None
    anomaly_threshold: float | None = None
    fired: str | None = None  # Fired: which check called the part bad; None when good or not inspected

    @property
    def shows_anomaly_map(self) -> bool:
        """Only the good-only model called the part bad: its stored heatmap is the anomaly map."""
        return self.fired == Fired.ANOMALY

    @property
    def heat_scale(self) -> float:
        """The factor that puts the stored heatmap on the absolute scale (``absolute_heat``).

        The Grad-CAM is scaled to its own maximum: times the score, a confident good part looks
        cold. The anomaly map is absolute already (its threshold is mid-way): 1.
        """
        if self.shows_anomaly_map:
            return 1.0
        score = self.score
        return score if score is not None and math.isfinite(score) else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectedPart:
    """A logged decision together with the pixels the operator is shown.

    This is what the station runtime hands to its listeners (the GUI, stdout, MQTT): the
    decision as stored, plus the decoded image and heatmap so nobody has to read them back.
    """

    decision: Decision
    image: np.ndarray | None  # uint8 grayscale H x W, as decoded
    heatmap: np.ndarray | None  # uint8 H x W at the model's input size
