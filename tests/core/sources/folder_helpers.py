"""A hot folder driven by hand in tests: the parts it hands out are decided and acknowledged as a
station would, with the decisions kept in memory for the duplicate check."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import cv2
import numpy as np

from core.common.types import Decision, Part, Verdict
from core.sources.hotfolder import HotFolderSource


def png_bytes(seed: int, size: int = 96) -> bytes:
    """A small PNG whose bytes differ for every seed."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(20, 5, (size, size)), 0, 255).astype(np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 3, int(150 + seed % 100), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


class DecisionLog:
    """The decisions a station would have committed, looked up by content hash."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def decide(self, source: HotFolderSource, part: Part) -> Decision:
        bad = part.error is not None or part.image is None
        decision = Decision(
            part_id=part.part_id, station="t", source_ref=part.source_ref,
            created_at=datetime.now(UTC), content_hash=part.content_hash,
            verdict=Verdict.NOT_INSPECTED if bad else Verdict.GOOD,
            score=None if bad else 0.1, threshold=None if bad else 0.5, reason=part.error,
            latency_ms=None, model_hash=None, image_path=None, heatmap_path=None,
        )  # fmt: skip
        self.decisions.append(decision)
        source.acknowledge(part, decision)
        return decision

    def seen(self, content_hash: str) -> list[Decision]:
        return [d for d in self.decisions if d.content_hash == content_hash]


def take_parts(
    source: HotFolderSource, log: DecisionLog, expect: int, *, extra_s: float = 0.3, limit_s: float = 15.0
) -> list[Part]:
    """Take and decide parts until ``expect`` came, then ``extra_s`` longer for any surplus."""
    parts: list[Part] = []
    deadline = time.monotonic() + limit_s
    while len(parts) < expect and time.monotonic() < deadline:
        part = source.next_part(0.05)
        if part is not None:
            parts.append(part)
            log.decide(source, part)
    surplus_until = time.monotonic() + extra_s
    while time.monotonic() < surplus_until:
        part = source.next_part(0.05)
        if part is not None:
            parts.append(part)
            log.decide(source, part)
    return parts
