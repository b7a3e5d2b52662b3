"""A real SQLite visual log with known truth for the history, detail and export tests.

Two stations share the log; every part has a real PNG picture (a ring, with a scratch on the
bad ones) and a heatmap; a few parts are not inspected; some are reviewed. Users: an admin made
by the first-run step, a supervisor and an operator, each with a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from core.common.fileio import sha256_bytes
from core.common.types import Decision, Inspection, Part, Verdict
from core.storage import VisualLog

T0 = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
MODEL = sha256_bytes(b"history test model")
PASSWORDS = {"root": "root-password-1", "anna": "anna-password-1", "otto": "otto-password-1"}


class Clock:
    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now = start - step
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@dataclass
class KnownLog:
    url: str
    media_root: Path
    decisions: list[Decision]
    truth: dict[str, Verdict]  # what each part really is

    def open(self, station: str = "line-a") -> VisualLog:
        return VisualLog(self.url, media_root=self.media_root, station=station)

    def actor(self, name: str) -> object:
        with self.open() as log:
            return log.authenticate(name, PASSWORDS[name])


def _picture(index: int, bad: bool) -> bytes:
    image = np.full((96, 96), 35, np.uint8)
    cv2.circle(image, (48, 48), 36, 160 + index % 40, -1)
    cv2.circle(image, (48, 48), 12, 25, -1)
    if bad:
        cv2.line(image, (20, 30 + index % 20), (40, 40), 60, 3)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def make_known_log(folder: Path, parts_per_station: int = 18) -> KnownLog:
    url = f"sqlite:///{folder / 'history.sqlite'}"
    media_root = folder / "media"
    logs = [
        VisualLog(url, media_root=media_root, station="line-a", clock=Clock(T0, timedelta(minutes=2))),
        VisualLog(url, media_root=media_root, station="line-b", clock=Clock(T0 + timedelta(minutes=1), timedelta(minutes=2))),
    ]  # fmt: skip
    decisions: list[Decision] = []
    truth: dict[str, Verdict] = {}
    try:
        first = logs[0]
        first.add_user("root", role="admin", password=PASSWORDS["root"])
        admin = first.authenticate("root", PASSWORDS["root"])
        first.add_user("anna", role="supervisor", password=PASSWORDS["anna"], actor=admin)
        first.add_user("otto", role="operator", password=PASSWORDS["otto"], actor=admin)
        for i in range(parts_per_station):
            for n, log in enumerate(logs):
                bad = (i + n) % 4 == 0
                data = _picture(i, bad)
                if i % 7 == 6:
                    part = Part(source_ref=f"cam-{n}#{i}", arrived_at=T0, image=None, error="torn frame")
                    decision = log.record(part, None, model_hash=None)
                else:
                    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
                    # The model misses every fifth bad part and rejects a few good ones.
                    score = 0.85 - 0.01 * i if bad else 0.1 + 0.02 * i
                    if bad and i % 5 == 0:
                        score = 0.3
                    heat = cv2.resize(image, (24, 24))
                    part = Part(
                        source_ref=f"/inbox/{n}/part_{i:03d}.png", arrived_at=T0, image=image, encoded=data
                    )
                    inspection = Inspection(score=score, threshold=0.5, heatmap=heat, latency_ms=4.0)
                    decision = log.record(part, inspection, model_hash=MODEL, model_name="tiny")
                decisions.append(decision)
                truth[decision.part_id] = Verdict.BAD if bad else Verdict.GOOD
        supervisor = first.authenticate("anna", PASSWORDS["anna"])
        for k, d in enumerate(decisions[::4]):
            first.review(d.part_id, verdict=truth[d.part_id], actor=supervisor, comment=f"check {k}")
    finally:
        for log in logs:
            log.close()
    return KnownLog(url=url, media_root=media_root, decisions=decisions, truth=truth)
