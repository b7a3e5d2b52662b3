"""The inspection worker on its QThread: ownership, errors, back-off, alarms and shutdown."""

import dataclasses
import threading
import time
from pathlib import Path

import cv2
import pytest
from gui_fakes import FAST_WORKER, FakeLine, make_inspected_part
from PySide6.QtCore import QObject, Slot

from core.common.types import Verdict
from core.sources.base import SourceStatus
from core.station.events import AlarmKind, AlarmRaised, StationInfo
from core.station.loop import LoopRuntime
from inspector_gui.worker import GUI_SETTINGS, WorkerController, describe_error

FAST = FAST_WORKER


class Recorder(QObject):
    """Collects what the worker emits. A QObject, so the slots run queued on the GUI thread."""

    def __init__(self, controller: WorkerController) -> None:
        super().__init__()
        self.parts = []
        self.failures: list[str] = []
        self.infos: list[StationInfo] = []
        self.statuses: list[SourceStatus] = []
        self.alarms: list[AlarmRaised] = []
        self.cleared: list[AlarmKind] = []
        self.stopped = 0
        self.threads: set[threading.Thread] = set()
        worker = controller.worker
        worker.inspected.connect(self._on_inspected)
        worker.failed.connect(self._on_failed)
        worker.runtime_started.connect(self._on_runtime_started)
        worker.stopped.connect(self._on_stopped)
        worker.source_status_changed.connect(self.statuses.append)
        worker.alarm_raised.connect(self.alarms.append)
        worker.alarm_cleared.connect(self.cleared.append)

    @Slot(object)
    def _on_inspected(self, part) -> None:
        self.threads.add(threading.current_thread())
        self.parts.append(part)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.threads.add(threading.current_thread())
        self.failures.append(message)

    @Slot(object)
    def _on_runtime_started(self, info: StationInfo) -> None:
        self.infos.append(info)

    @Slot()
    def _on_stopped(self) -> None:
        self.threads.add(threading.current_thread())
        self.stopped += 1


@pytest.fixture
def controller_for(qtbot):
    made: list[WorkerController] = []

    def _make(line: FakeLine, **options) -> tuple[WorkerController, Recorder]:
        controller = WorkerController(line.factory, settings=dataclasses.replace(FAST, **options))
        made.append(controller)
        return controller, Recorder(controller)

    yield _make
    for controller in made:
        controller.shutdown()


def test_the_real_runtime_gives_the_window_what_it_reads(qtbot, tiny_model: Path, tmp_path: Path):
    """The real StationRuntime, on a real hot folder, through the worker to the window."""
    from core.model.bundle import read_card
    from core.station.config import SourceOptions, StationConfig
    from core.station.runtime import build_runtime
    from core.synth.parts import part_image
    from inspector_gui.main_window import StationWindow

    inbox = tmp_path / "inbox"
    config = StationConfig(
        source=f"hotfolder:{inbox}",
        model=tiny_model,
        db_url=f"sqlite:///{tmp_path / 'log.sqlite'}",
        media_root=tmp_path / "media",
        station_name="line-7",
        threads=1,
        source_options=SourceOptions(settle_s=0.1, scan_interval_s=0.1),
    )
    runtime = build_runtime(config)
    try:
        assert isinstance(runtime, LoopRuntime)  # what the loop (and so the worker) drives
        info = runtime.info()
    finally:
        runtime.close()
    card = read_card(tiny_model)
    assert info == StationInfo(
        station_name="line-7",
        source_description=f"hot folder {inbox}",
        model_name=card.name,
        model_hash=card.content_sha256,
        threshold=card.threshold,
    )
    assert info.model_hash and len(info.short_hash) == 8

    controller = WorkerController(lambda: build_runtime(config), settings=FAST)
    window = StationWindow(controller)
    qtbot.addWidget(window)
    window.show()
    controller.start()
    try:
        cv2.imwrite(str(inbox / "part.png"), part_image(4, 0, defective=True, size=96)[0])
        qtbot.waitUntil(lambda: window.shown_part is not None, timeout=60_000)
        decision = window.shown_part.decision
        assert decision.threshold == card.threshold and decision.model_hash == info.model_hash
        assert window.source_status is not None and window.source_status.online
        assert window._status_station.text() == "station  line-7"
        assert f"#{info.short_hash}" in window._status_model.text()
        assert window._status_threshold.text() == f"threshold  {card.threshold:.3f}"
        assert "online" in window._status_source.text() and window.alarm_text is None
    finally:
        window.close()
    assert not controller.is_running


def test_runtime_is_built_used_and_closed_on_the_worker_thread(qtbot, controller_for):
    parts = [make_inspected_part(i, Verdict.GOOD) for i in range(3)]
    line = FakeLine(parts)
    controller, seen = controller_for(line)
    controller.start()
    qtbot.waitUntil(lambda: len(seen.parts) == 3, timeout=3000)
    assert seen.parts == parts  # the same objects, in order
    assert seen.threads == {threading.main_thread()}  # signals arrive on the GUI thread
    assert seen.infos and seen.infos[0].station_name == "line-3 / station A"
    assert seen.infos[0].short_hash == "9f2c4e1a"

    controller.shutdown()
    assert not controller.is_running
    assert not controller.worker.is_running
    runtime = line.runtimes[0]
    assert runtime.closed
    assert runtime.thread is not threading.main_thread()
    assert runtime.close_thread is runtime.thread  # made and closed on the same worker thread
    assert line.build_threads == [runtime.thread]
    qtbot.waitUntil(lambda: seen.stopped == 1, timeout=1000)


def test_exception_in_process_next_is_reported_and_the_runtime_rebuilt(qtbot, controller_for):
    parts = [make_inspected_part(i, Verdict.BAD if i % 2 else Verdict.GOOD) for i in range(5)]
    line = FakeLine(parts, fail_on_calls={3})
    controller, seen = controller_for(line)
    controller.start()
    qtbot.waitUntil(lambda: len(seen.parts) == 5, timeout=3000)
    assert len(seen.failures) == 1
    assert "simulated inference failure on call 3" in seen.failures[0]
    assert "RuntimeError" in seen.failures[0]
    assert line.builds == 2
    assert line.runtimes[0].closed  # the failed runtime was closed before the rebuild
    assert not line.runtimes[1].closed
    assert [p.decision.part_id for p in seen.parts] == [p.decision.part_id for p in parts]
    assert len(seen.infos) == 2  # the status bar hears about the rebuilt runtime


def test_factory_failures_are_retried_with_backoff(qtbot, controller_for):
    line = FakeLine([make_inspected_part(0)], factory_failures=2)
    controller, seen = controller_for(line)
    started = time.monotonic()
    controller.start()
    qtbot.waitUntil(lambda: len(seen.parts) == 1, timeout=3000)
    elapsed = time.monotonic() - started
    assert len(seen.failures) == 2
    assert all(m.startswith("Station could not start: OSError: camera not found") for m in seen.failures)
    assert "retrying in 0.1 s" in seen.failures[1]  # 0.05 s, then doubled
    assert elapsed >= 0.05 + 0.1 - 0.01
    assert line.builds == 3


def test_the_window_backs_off_from_half_a_second_up_to_five():
    assert (GUI_SETTINGS.backoff_first_s, GUI_SETTINGS.backoff_max_s) == (0.5, 5.0)
    assert GUI_SETTINGS.step_timeout_s <= 0.2  # closing the window is never slower than that


def test_source_status_and_alarms_are_forwarded(qtbot, controller_for):
    line = FakeLine([make_inspected_part(0)])
    controller, seen = controller_for(line)
    controller.start()
    qtbot.waitUntil(lambda: len(seen.parts) == 1 and bool(seen.statuses), timeout=3000)
    assert seen.statuses[0].online and not seen.alarms
    line.problem, line.online = "inbox /srv/inbox unreachable: No such file or directory", False
    qtbot.waitUntil(lambda: bool(seen.alarms), timeout=3000)
    assert seen.statuses[-1].online is False
    assert seen.alarms[0].kind is AlarmKind.SOURCE
    assert seen.alarms[0].message == "source OFFLINE: inbox /srv/inbox unreachable: No such file or directory"
    line.online = True
    qtbot.waitUntil(lambda: bool(seen.cleared), timeout=3000)
    assert seen.cleared == [AlarmKind.SOURCE] and seen.statuses[-1].online
    assert not seen.failures  # a source outage is not a worker failure


def test_stop_during_a_long_backoff_is_prompt(qtbot, controller_for):
    line = FakeLine(factory_failures=1000)
    controller, seen = controller_for(line, backoff_first_s=5.0, backoff_max_s=5.0)
    controller.start()
    qtbot.waitUntil(lambda: len(seen.failures) == 1, timeout=2000)
    started = time.monotonic()
    controller.shutdown()
    assert time.monotonic() - started < 1.0
    assert not controller.is_running


def test_shutdown_is_idempotent_and_safe_before_start(qtbot, controller_for):
    controller, _ = controller_for(FakeLine())
    controller.shutdown()  # never started
    assert not controller.is_running
    controller, seen = controller_for(FakeLine([make_inspected_part(0)]))
    controller.start()
    qtbot.waitUntil(lambda: len(seen.parts) == 1, timeout=2000)
    controller.shutdown()
    controller.shutdown()
    assert not controller.is_running


def test_a_failing_close_does_not_stop_recovery(qtbot, controller_for):
    line = FakeLine([make_inspected_part(i) for i in range(3)], fail_on_calls={2})
    original_factory = line.factory

    def factory():
        runtime = original_factory()

        def bad_close():
            runtime.closed = True
            raise OSError("database is locked")

        runtime.close = bad_close
        return runtime

    controller = WorkerController(factory, settings=FAST)
    seen = Recorder(controller)
    controller.start()
    try:
        qtbot.waitUntil(lambda: len(seen.parts) == 3, timeout=3000)
    finally:
        controller.shutdown()
    assert len(seen.failures) == 1


def test_describe_error_is_one_line():
    assert describe_error(ValueError("bad pixel\nmore detail")) == "ValueError: bad pixel"
    assert describe_error(KeyError()) == "KeyError"
