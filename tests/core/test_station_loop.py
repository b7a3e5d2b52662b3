"""The station's one run loop on the real runtime: a real hot folder, the tiny model, SQLite.

The source goes offline and comes back, the factory fails and then works, the storage fails and
recovers, and a stop request is honoured promptly during a real back-off.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

from core.model.bundle import BundleError
from core.station.config import SourceOptions, StationConfig
from core.station.events import (
    AlarmCleared,
    AlarmKind,
    AlarmRaised,
    PartInspected,
    SourceStatusChanged,
    StationEvent,
    StationStarted,
    StationStopped,
)
from core.station.loop import LoopRuntime, LoopSettings, StationLoop, next_backoff_s
from core.station.runtime import build_runtime
from core.synth.parts import part_image

FAST_SOURCE = SourceOptions(settle_s=0.1, scan_interval_s=0.1, truncated_grace_s=0.2)


@pytest.fixture(autouse=True)
def _one_inference_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _config(inbox: Path, model: Path, tmp_path: Path, **fields: object) -> StationConfig:
    values: dict[str, object] = {
        "source": f"hotfolder:{inbox}",
        "model": model,
        "db_url": f"sqlite:///{tmp_path / 'log.sqlite'}",
        "media_root": tmp_path / "media",
        "station_name": "line-1",
        "source_options": FAST_SOURCE,
        "threads": 1,
        "backoff_first_s": 0.1,
        "backoff_max_s": 0.4,
        "status_poll_s": 0.1,
    }
    values.update(fields)
    return StationConfig.model_validate(values)


class Running:
    """A loop on its own thread, its events collected; stopped and joined by ``close``."""

    def __init__(self, factory: Callable[[], LoopRuntime], config: StationConfig) -> None:
        self.events: list[StationEvent] = []
        self.lock = threading.Lock()
        self.loop = StationLoop(factory, settings=LoopSettings.from_config(config))
        self.loop.subscribe(self._on_event)
        self.subscribers: list[Callable[[StationEvent], None]] = []
        self.thread = threading.Thread(target=self.loop.run, name="test-station-loop")

    def _on_event(self, event: StationEvent) -> None:
        with self.lock:
            self.events.append(event)
        for subscriber in self.subscribers:
            subscriber(event)

    def start(self) -> Running:
        self.thread.start()
        return self

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, condition: Callable[[], object], limit_s: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < limit_s, f"no {what} within {limit_s} s: {self.events}"
            time.sleep(0.02)
        return time.monotonic() - started

    def close(self) -> float:
        """Stop; returns how long the loop took to end."""
        started = time.monotonic()
        self.loop.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        return time.monotonic() - started


def _write_part(inbox: Path, name: str, index: int) -> None:
    image, _ = part_image(31, index, defective=bool(index % 2), size=96)
    cv2.imwrite(str(inbox / name), image)


def _rows(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        return sorted(Path(r[0]).name for r in conn.execute("SELECT source_ref FROM decisions"))


def test_backoff_doubles_up_to_its_ceiling() -> None:
    waits: list[float] = []
    previous = None
    for _ in range(6):
        previous = next_backoff_s(previous, first_s=0.5, max_s=5.0)
        waits.append(previous)
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_real_runtime_is_what_the_loop_drives(tiny_model: Path, tmp_path: Path) -> None:
    runtime = build_runtime(_config(tmp_path / "inbox", tiny_model, tmp_path))
    try:
        assert isinstance(runtime, LoopRuntime)
        info = runtime.info()
        assert info.station_name == "line-1" and info.model_hash == runtime.inspector.model_hash
        assert info.threshold == runtime.inspector.threshold and info.source_description.startswith(
            "hot folder"
        )
    finally:
        runtime.close()


def test_source_offline_raises_an_alarm_within_3_s_and_recovery_clears_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    config = _config(inbox, tiny_model, tmp_path)
    run = Running(lambda: build_runtime(config), config).start()
    try:
        run.wait_for(lambda: run.of(StationStarted), 60, "start")
        run.wait_for(lambda: run.of(SourceStatusChanged), 3, "first status")
        assert run.of(SourceStatusChanged)[0].status.online

        shutil.rmtree(inbox)  # the inbox is gone (a share unmounted, a folder deleted)
        run.wait_for(lambda: run.of(AlarmRaised), 3, "source alarm")
        alarm = run.of(AlarmRaised)[0]
        assert alarm.kind is AlarmKind.SOURCE and alarm.message.startswith("source OFFLINE: ")
        offline = [e.status for e in run.of(SourceStatusChanged) if not e.status.online]
        assert offline and "unreachable" in offline[0].message

        inbox.mkdir()
        run.wait_for(lambda: run.of(AlarmCleared), 3, "alarm cleared")
        assert run.of(AlarmCleared) == [AlarmCleared(kind=AlarmKind.SOURCE)]
        assert run.of(SourceStatusChanged)[-1].status.online
        # And it inspects again, on the same runtime.
        _write_part(inbox, "after.png", 0)
        run.wait_for(lambda: run.of(PartInspected), 30, "part after recovery")
        assert len(run.of(StationStarted)) == 1
    finally:
        run.close()
    assert _rows(tmp_path) == ["after.png"]
    assert run.events[-1] == StationStopped(parts_done=1, finished=False)


def test_a_factory_failing_twice_gives_two_alarms_then_starts(tiny_model: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    bundle = tmp_path / "bundle"  # not there yet: the build fails for real (BundleError)
    config = _config(inbox, bundle, tmp_path)
    run = Running(lambda: build_runtime(config), config)

    def install_after_two(event: StationEvent) -> None:
        if isinstance(event, AlarmRaised) and len(run.of(AlarmRaised)) == 2:
            shutil.copytree(tiny_model, bundle)  # someone puts the model in place

    run.subscribers.append(install_after_two)
    run.start()
    try:
        run.wait_for(lambda: run.of(StationStarted), 60, "start")
    finally:
        run.close()
    kinds = [type(e).__name__ for e in run.events]
    assert kinds[:4] == ["AlarmRaised", "AlarmRaised", "AlarmCleared", "StationStarted"]
    first, second = run.of(AlarmRaised)[:2]
    assert first.kind is second.kind is AlarmKind.STATION
    assert first.message.startswith("Station could not start: BundleError: ")
    assert "not a model bundle" in first.message
    assert (first.retry_in_s, second.retry_in_s) == (0.1, 0.2)  # doubling back-off
    assert run.of(StationStarted)[0].info.model_hash


def test_a_fatal_start_error_ends_the_loop_with_the_error(tmp_path: Path) -> None:
    config = _config(tmp_path / "inbox", tmp_path / "missing", tmp_path)
    events: list[StationEvent] = []
    loop = StationLoop(lambda: build_runtime(config), fatal_errors=(BundleError,))
    loop.subscribe(events.append)
    with pytest.raises(BundleError):
        loop.run()
    assert events == [StationStopped(parts_done=0, finished=False)]


def test_storage_outage_keeps_the_runtime_and_the_files_and_recovery_clears_the_alarm(
    tiny_model: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    media = tmp_path / "media"
    config = _config(inbox, tiny_model, tmp_path, max_parts=2)
    run = Running(lambda: build_runtime(config), config).start()
    try:
        run.wait_for(lambda: run.of(StationStarted), 60, "start")
        media.rename(tmp_path / "media-away")  # the media folder is replaced by a file: writes fail
        media.write_bytes(b"")
        _write_part(inbox, "a.png", 0)
        _write_part(inbox, "b.png", 1)
        run.wait_for(lambda: run.of(AlarmRaised), 15, "storage alarm")
        alarm = run.of(AlarmRaised)[0]
        assert alarm.kind is AlarmKind.STORAGE and "cannot be used" in alarm.message
        assert "retrying in" in alarm.message
        assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["a.png", "b.png"]
        assert not run.of(PartInspected)
        media.unlink()
        (tmp_path / "media-away").rename(media)  # space is back: recovery without a restart
        run.thread.join(timeout=30)  # max_parts=2: the loop ends by itself
        assert not run.thread.is_alive()
    finally:
        run.close()
    assert len(run.of(StationStarted)) == 1  # the runtime was kept, not rebuilt
    assert run.of(AlarmCleared) == [AlarmCleared(kind=AlarmKind.STORAGE)]
    assert {e.kind for e in run.of(AlarmRaised)} == {AlarmKind.STORAGE}
    cleared_at = run.events.index(AlarmCleared(kind=AlarmKind.STORAGE))
    assert isinstance(run.events[cleared_at + 1], PartInspected)  # cleared by a committed row
    assert run.events[-1] == StationStopped(parts_done=2, finished=True)
    assert _rows(tmp_path) == ["a.png", "b.png"]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["a.png", "b.png"]


def test_stop_is_prompt_during_a_long_storage_backoff(tiny_model: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    media = tmp_path / "media"
    config = _config(inbox, tiny_model, tmp_path, backoff_first_s=30.0, backoff_max_s=30.0)
    run = Running(lambda: build_runtime(config), config).start()
    try:
        run.wait_for(lambda: run.of(StationStarted), 60, "start")
        media.rename(tmp_path / "media-away")
        media.write_bytes(b"")
        _write_part(inbox, "a.png", 0)
        run.wait_for(lambda: run.of(AlarmRaised), 15, "storage alarm")
        assert run.of(AlarmRaised)[0].retry_in_s == 30.0
        time.sleep(0.3)  # well inside the 30 s back-off
        assert run.thread.is_alive()
    finally:
        latency_s = run.close()
    assert latency_s < 1.0, f"stop took {latency_s:.2f} s during a 30 s back-off"
    # The part whose row could not be written stays in the inbox for the next run.
    assert [p.name for p in inbox.iterdir() if p.is_file()] == ["a.png"]


def test_stop_is_prompt_during_a_long_start_backoff(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "inbox", tmp_path / "missing", tmp_path, backoff_first_s=30.0, backoff_max_s=30.0
    )
    run = Running(lambda: build_runtime(config), config).start()
    try:
        run.wait_for(lambda: run.of(AlarmRaised), 30, "start alarm")
        time.sleep(0.3)
        assert run.thread.is_alive() and len(run.of(AlarmRaised)) == 1  # still waiting out 30 s
    finally:
        latency_s = run.close()
    assert latency_s < 0.5, f"stop took {latency_s:.2f} s during a 30 s back-off"
    assert run.events[-1] == StationStopped(parts_done=0, finished=False)
