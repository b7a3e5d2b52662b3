"""The station without a window (``inspector run --headless``): the run loop's events as text.

Decisions go to the outputs (``core.outputs``: JSON lines on stdout, MQTT); the station's start,
the source's state changes, alarms and a summary every ``summary_s`` go to stderr. SIGINT and
SIGTERM stop it cleanly: parts already taken are inspected and committed, then it exits with 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TextIO

from core.common.types import Verdict
from core.outputs.base import Output
from core.sources.base import SourceStatus
from core.station.config import StationConfig
from core.station.events import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmRaised,
    PartInspected,
    SourceStatusChanged,
    StationEvent,
    StationStarted,
    StationStopped,
)
from core.station.loop import LoopRuntime, LoopSettings, StationLoop

log = logging.getLogger(__name__)


def alarm_line(event: AlarmRaised | AlarmCleared | AlarmAcknowledged) -> str:
    """An alarm event as the headless station prints it: the operator's words and the fix first
    (what a person reading the journal acts on), the technical line after them."""
    if isinstance(event, AlarmRaised):
        if not event.plain:
            return f"ALARM {event.kind.value}: {event.message}"
        fix = f" {event.fix}" if event.fix else ""
        return f"ALARM {event.kind.value}: {event.plain}.{fix} (details: {event.message})"
    if isinstance(event, AlarmAcknowledged):
        recorded = "recorded in the log" if event.recorded else "NOT recorded: the log cannot be reached"
        return f"alarm acknowledged by {event.user}: {event.kind.value} ({recorded})"
    return f"alarm cleared: {event.kind.value}"


def _stamp() -> str:
    return datetime.now(UTC).astimezone().strftime("%H:%M:%S")


class _Tally:
    """The counts the summary line shows, kept from the loop's events (over every rebuild)."""

    def __init__(self, station_name: str) -> None:
        self.station_name = station_name
        self.started_at = time.monotonic()
        self.started = False
        self.verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        self.status: SourceStatus | None = None
        self._lock = threading.Lock()

    def count(self, verdict: Verdict) -> None:
        with self._lock:
            self.verdicts[verdict] += 1

    def line(self) -> str:
        """One line about the station so far: counts, rate, the source's state."""
        with self._lock:
            v = dict(self.verdicts)
        parts = sum(v.values())
        elapsed = max(1e-9, time.monotonic() - self.started_at)
        status = self.status
        source = "source: unknown"
        if status is not None:
            source = (
                f"source {'online' if status.online else 'OFFLINE'}, backlog {status.backlog}, "
                f"overflowed {status.overflowed}, reconnects {status.reconnects}"
            )
        return (
            f"{self.station_name}: {parts} parts (good {v[Verdict.GOOD]}, bad {v[Verdict.BAD]}, "
            f"not inspected {v[Verdict.NOT_INSPECTED]}), {parts / elapsed:.1f} parts/s; {source}"
        )


def run_headless(
    config: StationConfig,
    *,
    factory: Callable[[], LoopRuntime] | None = None,
    fatal_errors: tuple[type[BaseException], ...] = (),
    err: TextIO | None = None,
) -> int:
    """Run the station until SIGINT/SIGTERM, ``config.max_parts`` parts or the source's end.

    Args:
        config: The station; its ``outputs`` get the decisions, ``summary_s`` paces the summary.
        factory: Builds the runtime (default ``build_runtime(config)``).
        fatal_errors: Start-up errors that end the run instead of being retried (see ``StationLoop``).
        err: Where the status lines go (default stderr).

    Returns:
        0 once the station stopped and committed the parts in flight.
    """
    from core.outputs.registry import open_output

    if factory is None:
        from core.station.runtime import build_runtime

        def factory() -> LoopRuntime:
            return build_runtime(config)

    stream = err or sys.stderr
    tally = _Tally(config.station_name)
    loop = StationLoop(factory, settings=LoopSettings.from_config(config), fatal_errors=fatal_errors)

    def say(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # stderr closed: keep inspecting
            print(f"{_stamp()} {line}", file=stream, flush=True)

    opened: list[Output] = []

    def on_event(event: StationEvent) -> None:
        if isinstance(event, PartInspected):
            tally.count(event.item.decision.verdict)
            for output in opened:
                output.publish(event.item)
        elif isinstance(event, SourceStatusChanged):
            tally.status = event.status
            say(f"{tally.station_name}: {event.status.message}")
            for output in opened:
                output.status(event.status)
        elif isinstance(event, StationStarted):
            info = event.info
            tally.station_name = info.station_name
            if not tally.started:  # the rate counts from the first start, not the model's loading
                tally.started, tally.started_at = True, time.monotonic()
            say(
                f"{info.station_name}: inspecting parts from {info.source_description} with "
                f"{info.model_name} ({(info.model_hash or '')[:12]}), threshold {info.threshold:.4f}"
            )
        elif isinstance(event, AlarmRaised | AlarmCleared | AlarmAcknowledged):
            say(alarm_line(event))
        elif isinstance(event, StationStopped):
            say(tally.line() + (" (stopped)" if loop.stop_requested else ""))

    loop.subscribe(on_event)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        loop.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread: threading.Thread | None = None
    try:
        for spec in config.outputs:
            opened.append(open_output(spec, station=config.station_name))
        # The loop runs on its own thread (it owns the runtime); this one takes the signals and
        # prints the summary.
        failure: list[BaseException] = []

        def run() -> None:
            try:
                loop.run()
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=run, name="station-loop")
        thread.start()
        while thread.is_alive():
            thread.join(config.summary_s if config.summary_s > 0 else 1.0)
            if thread.is_alive() and config.summary_s > 0:
                say(tally.line())
        if failure:
            raise failure[0]
    finally:
        loop.stop()
        if thread is not None:
            thread.join()
        for output in opened:
            try:
                output.close()
            except Exception:
                log.exception("closing output %s failed", output.name)
        for s, h in previous.items():
            signal.signal(s, h)
    return 0
