"""The station runtime: source -> inspector -> visual log, every part exactly one row.

The same runtime runs headless (``inspector run``) and inside the GUI's worker thread. It is
made on the thread that uses it: the model, the database session and the source belong to
that thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.inference import Inspector
from core.sources import Source
from core.storage import VisualLog
from core.types import InspectedPart, Inspection

log = logging.getLogger(__name__)

Listener = Callable[[InspectedPart], None]


class StationRuntime:
    """Takes parts from a source, inspects them and logs each decision before acknowledging it."""

    def __init__(
        self,
        source: Source,
        inspector: Inspector,
        visual_log: VisualLog,
        *,
        station_name: str = "station-1",
        listeners: list[Listener] | None = None,
        max_parts: int | None = None,
    ) -> None:
        self.max_parts = max_parts  # take no part after this many (smoke tests, batch runs)
        self.parts_done = 0
        self.source = source
        self.inspector = inspector
        self.log = visual_log
        self.station_name = station_name
        self.listeners = list(listeners or [])

    @property
    def finished(self) -> bool:
        """True once ``max_parts`` parts are done; no further part is taken."""
        return self.max_parts is not None and self.parts_done >= self.max_parts

    # Read by the GUI for display.
    @property
    def source_description(self) -> str:
        return self.source.description

    @property
    def model_name(self) -> str:
        return self.inspector.card.name

    @property
    def model_hash(self) -> str | None:
        return self.inspector.model_hash

    @property
    def threshold(self) -> float:
        return self.inspector.threshold

    def process_next(self, timeout_s: float) -> InspectedPart | None:
        """Wait up to ``timeout_s`` for a part; inspect, log and acknowledge it."""
        if self.finished:
            time.sleep(timeout_s)
            return None
        part = self.source.next_part(timeout_s)
        if part is None:
            return None
        inspection: Inspection | None = None
        reason = part.error
        if part.image is not None and reason is None:
            try:
                inspection = self.inspector.inspect(part.image)
            except Exception as exc:  # the part gets an error row; the station goes on
                log.exception("inspection failed for %s", part.source_ref)
                reason = f"inspection failed: {type(exc).__name__}: {exc}"
        decision = self.log.record(
            part, inspection, model_hash=self.inspector.model_hash, model_name=self.model_name, reason=reason
        )
        self.source.acknowledge(part, decision)
        self.parts_done += 1
        item = InspectedPart(
            decision=decision, image=part.image, heatmap=inspection.heatmap if inspection else None
        )
        for listener in self.listeners:
            listener(item)
        return item

    def run(self, stop: threading.Event, *, max_parts: int | None = None) -> int:
        """Process parts until ``stop`` is set (or ``max_parts`` are done); returns the count."""
        done = 0
        while not stop.is_set() and not self.finished and (max_parts is None or done < max_parts):
            if self.process_next(timeout_s=0.2) is not None:
                done += 1
        return done

    def close(self) -> None:
        self.source.close()
        self.log.close()


def build_runtime(
    source_spec: str,
    model: Path,
    *,
    db_url: str | None = None,
    media_root: Path | None = None,
    station_name: str = "station-1",
    device: str | None = None,
    threshold: float | None = None,
    max_parts: int | None = None,
) -> StationRuntime:
    """Make a runtime from plain settings (call it on the thread that will use it)."""
    from core.sources import open_source

    inspector = Inspector(model, device=device, threshold=threshold)
    visual_log = VisualLog(db_url, media_root=media_root, station=station_name)
    return StationRuntime(
        open_source(source_spec), inspector, visual_log, station_name=station_name, max_parts=max_parts
    )
