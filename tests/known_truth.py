"""A real SQLite visual log whose truth is known: parts with scores, reviews of half of them.

Shared by the what-if, threshold CLI and threshold panel tests (``tests/`` is on the path of
every test through the root conftest). The log's records are in the last 24 hours of the real
clock, so the command line's default window covers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from core.common.fileio import sha256_bytes
from core.common.types import Inspection, Part, Verdict
from core.storage import VisualLog

MODEL_HASH = sha256_bytes(b"the known-truth model")
STATION = "line-1"
PASSWORDS = {"admin": "admin-password", "sara": "sara-password", "otto": "otto-password"}
# The bundle's validation scores as its card keeps them (core.training.fit): the lowest defect
# scores 0.62, so a threshold above it misses a validation defect.
VALIDATION = {"good": [0.02, 0.05, 0.1, 0.2, 0.31, 0.44, 0.52], "bad": [0.62, 0.7, 0.81, 0.9, 0.97]}


class StepClock:
    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now, self.step = start - step, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@dataclass(frozen=True)
class KnownLog:
    url: str
    media_root: Path
    db: Path
    truth: dict[str, Verdict]  # every inspected part's true class
    reviewed: set[str]  # the parts a supervisor reviewed (with their true class)
    scores: dict[str, float]


def _picture(rng: np.random.Generator, bad: bool) -> tuple[np.ndarray, bytes]:
    image = rng.integers(90, 140, size=(48, 48), dtype=np.uint8)
    if bad:
        image[18:30, 10:38] = 250  # a bright scratch
    ok, png = cv2.imencode(".png", image)
    assert ok
    return image, png.tobytes()


def make_known_log(folder: Path, *, parts: int = 120, seed: int = 3) -> KnownLog:
    """Write the log under ``folder``: users admin, sara (supervisor), otto (operator), the
    threshold 0.5 recorded by the station, ``parts`` decisions (a few not inspected)."""
    rng = np.random.default_rng(seed)
    db, media_root = folder / "log.sqlite", folder / "media"
    url = f"sqlite:///{db}"
    start = datetime.now(UTC) - timedelta(hours=10)
    truth: dict[str, Verdict] = {}
    reviewed: set[str] = set()
    scores: dict[str, float] = {}
    with VisualLog(
        url, media_root=media_root, station=STATION, clock=StepClock(start, timedelta(seconds=30))
    ) as log:
        log.add_user("admin", role="admin", password=PASSWORDS["admin"])
        admin = log.authenticate("admin", PASSWORDS["admin"])
        log.add_user("sara", role="supervisor", password=PASSWORDS["sara"], actor=admin)
        log.add_user("otto", role="operator", password=PASSWORDS["otto"], actor=admin)
        sara = log.authenticate("sara", PASSWORDS["sara"])
        log.register_model(
            MODEL_HASH, name="known", metadata={"name": "known", "metrics": {"val_scores": VALIDATION}}
        )
        log.record_threshold_change(
            None,
            0.5,
            actor=log.access.system_actor(),
            reason="start-up",
            model_hash=MODEL_HASH,
            model_name="known",
        )
        for i in range(parts):
            is_bad = bool(rng.random() < 0.35)
            image, png = _picture(rng, is_bad)
            source = f"/inbox/part-{i:03d}.png"
            if i % 23 == 7:
                part = Part(source_ref=source, arrived_at=log.now(), image=None, error="truncated PNG")
                log.record(part, None, model_hash=None)
                continue
            # Overlapping classes, rounded so that some scores tie with the thresholds tried.
            score = float(np.clip(rng.normal(0.68 if is_bad else 0.3, 0.16), 0.0, 1.0).round(2))
            heatmap = rng.integers(0, 256, size=(12, 12), dtype=np.uint8)
            part = Part(source_ref=source, arrived_at=log.now(), image=image, encoded=png)
            decision = log.record(
                part,
                Inspection(score=score, threshold=0.5, heatmap=heatmap, latency_ms=3.0),
                model_hash=MODEL_HASH,
                model_name="known",
            )
            truth[decision.part_id] = Verdict.BAD if is_bad else Verdict.GOOD
            scores[decision.part_id] = score
            if i % 2 == 0:
                log.review(decision.part_id, verdict=truth[decision.part_id], actor=sara, comment="looked")
                reviewed.add(decision.part_id)
    return KnownLog(url=url, media_root=media_root, db=db, truth=truth, reviewed=reviewed, scores=scores)
