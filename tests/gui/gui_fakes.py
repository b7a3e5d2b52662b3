"""Test-only stand-ins for the core station runtime, used by the widget tests.

``FakeLine`` yields *real* ``InspectedPart`` objects (drawn images, heatmaps, decisions) so the
widgets see exactly the types the core runtime produces; only the model and the log are missing.
Kept apart from conftest.py (and without Qt) so test modules can import it by a unique name.
"""

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import cv2
import numpy as np

from core.common.types import Decision, InspectedPart, Verdict, new_part_id
from core.sources.base import SourceStatus
from core.station.events import StationInfo
from core.station.loop import LoopSettings

THRESHOLD = 0.5
# The run loop paced for tests: short steps and back-offs.
FAST_WORKER = LoopSettings(step_timeout_s=0.02, backoff_first_s=0.05, backoff_max_s=0.2, status_poll_s=0.05)


# -- test parts -----------------------------------------------------------------------------


def make_inspected_part(
    index: int = 0,
    verdict: Verdict = Verdict.GOOD,
    score: float | None = None,
    *,
    reason: str | None = None,
    with_image: bool = True,
    size: tuple[int, int] = (400, 300),
    station: str = "line-3 / station A",
) -> InspectedPart:
    """A part as the runtime would hand it over: a bright disc on black, a heatmap, a decision."""
    width, height = size
    if score is None and verdict is not Verdict.NOT_INSPECTED:
        score = 0.12 if verdict is Verdict.GOOD else 0.87
    if verdict is Verdict.NOT_INSPECTED and reason is None:
        reason = "decode failed: truncated JPEG"
    image = None
    heatmap = None
    if with_image:
        image = np.zeros((height, width), np.uint8)
        centre = (width // 2, height // 2)
        radius = min(width, height) * 2 // 5
        cv2.circle(image, centre, radius, 185, -1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, radius // 3, 40, -1, lineType=cv2.LINE_AA)  # the bore
        # a defect spot for bad parts, where the heatmap is hot
        spot = (centre[0] + radius // 2, centre[1] - radius // 3)
        if verdict is Verdict.BAD:
            cv2.line(image, spot, (spot[0] + radius // 4, spot[1] + radius // 5), 70, 5, cv2.LINE_AA)
        ys, xs = np.mgrid[0:64, 0:64].astype(np.float32)
        hx, hy = spot[0] * 64 / width, spot[1] * 64 / height
        peak = 255.0 if verdict is Verdict.BAD else 70.0
        heatmap = (peak * np.exp(-((xs - hx) ** 2 + (ys - hy) ** 2) / (2 * 7.0**2))).astype(np.uint8)
        if verdict is Verdict.NOT_INSPECTED:
            heatmap = None
    decision = Decision(
        part_id=new_part_id(),
        station=station,
        source_ref=f"/srv/inspector/hotfolder/inbox/part_{index:05d}.png",
        created_at=datetime.now(UTC),
        content_hash=f"{index:064x}",
        verdict=verdict,
        score=score,
        threshold=None if verdict is Verdict.NOT_INSPECTED else THRESHOLD,
        reason=reason,
        latency_ms=None if verdict is Verdict.NOT_INSPECTED else 11.5 + index % 7,
        model_hash="9f2c4e1ab37d5c60" + "0" * 48,
        image_path=None,
        heatmap_path=None,
    )
    return InspectedPart(decision=decision, image=image, heatmap=heatmap)


def renumbered(part: InspectedPart, index: int) -> InspectedPart:
    """The same pixels as a new part (cheap: arrays are shared, they are never written)."""
    decision = dataclasses.replace(
        part.decision,
        part_id=new_part_id(),
        source_ref=f"/srv/inspector/hotfolder/inbox/part_{index:05d}.png",
        created_at=datetime.now(UTC),
    )
    return dataclasses.replace(part, decision=decision)


# -- the stand-in runtime -------------------------------------------------------------------


class FakeLine:
    """A production line for tests: the parts to deliver and the failures to inject.

    Shared by every runtime its :meth:`factory` builds, so failures and deliveries are counted
    across rebuilds.

    Args:
        parts: delivered in order, one per ``process_next`` call.
        fail_on_calls: 1-based ``process_next`` call numbers that raise ``RuntimeError``.
        factory_failures: how many first factory calls raise ``OSError``.
        endless: after ``parts`` run out, deliver copies of them forever.
        delay_s: time each delivered part "takes" (inference).

    ``online`` and ``problem`` are the source's state as its runtimes report it; a test may
    change them while the line runs.
    """

    def __init__(
        self,
        parts: Iterable[InspectedPart] = (),
        *,
        fail_on_calls: Iterable[int] = (),
        factory_failures: int = 0,
        endless: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.parts = list(parts)
        self.fail_on_calls = set(fail_on_calls)
        self.factory_failures = factory_failures
        self.endless = endless
        self.delay_s = delay_s
        self.calls = 0
        self.delivered = 0
        self.builds = 0
        self.runtimes: list[FakeRuntime] = []
        self.build_threads: list[threading.Thread] = []
        self.online = True
        self.problem = ""
        self._lock = threading.Lock()

    def factory(self) -> "FakeRuntime":
        with self._lock:
            self.builds += 1
            self.build_threads.append(threading.current_thread())
            if self.factory_failures > 0:
                self.factory_failures -= 1
                raise OSError("camera not found at rtsp://10.0.0.7/stream")
            runtime = FakeRuntime(self)
            self.runtimes.append(runtime)
            return runtime

    def take(self, timeout_s: float) -> InspectedPart | None:
        with self._lock:
            self.calls += 1
            if self.calls in self.fail_on_calls:
                raise RuntimeError(f"simulated inference failure on call {self.calls}")
            part: InspectedPart | None = None
            if self.delivered < len(self.parts):
                part = self.parts[self.delivered]
            elif self.endless and self.parts:
                base = self.parts[self.delivered % len(self.parts)]
                part = renumbered(base, self.delivered)
            if part is not None:
                self.delivered += 1
        if part is None:
            time.sleep(timeout_s)  # a real runtime waits for the next part
        elif self.delay_s:
            time.sleep(self.delay_s)
        return part


class FakeRuntime:
    """Stands in for ``core.station.runtime.StationRuntime`` (``core.station.loop.LoopRuntime``)
    in widget tests only; the real runtime is checked against the same protocol in
    test_gui_worker.py."""

    def __init__(self, line: FakeLine) -> None:
        self._line = line
        self.listeners: list[Callable[[InspectedPart], None]] = []
        self.max_parts: int | None = None
        self.parts_done = 0
        self.finished = False
        self.closed = False
        self.thread = threading.current_thread()
        self.close_thread: threading.Thread | None = None

    def info(self) -> StationInfo:
        return StationInfo(
            station_name="line-3 / station A",
            source_description="hot folder /srv/inspector/hotfolder/inbox",
            model_name="resnet18-discs",
            model_hash="9f2c4e1ab37d5c60" + "0" * 48,
            threshold=THRESHOLD,
        )

    def poll_status(self, *, force: bool = False) -> SourceStatus:
        line = self._line
        return SourceStatus(online=line.online, message="watching the inbox" if line.online else line.problem)

    def process_next(self, timeout_s: float) -> InspectedPart | None:
        assert not self.closed, "process_next after close"
        part = self._line.take(timeout_s)
        if part is not None:
            self.parts_done += 1
            for listener in self.listeners:  # as the real runtime does, once the row is in
                listener(part)
        return part

    def close(self) -> None:
        self.closed = True
        self.close_thread = threading.current_thread()
