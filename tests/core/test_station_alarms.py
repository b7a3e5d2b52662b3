"""The loop's own alarms on the real runtime (hot folder, tiny model, SQLite): no parts, a run of
bad parts, a nearly full disk, a refused model in plain words; raised and acknowledged alarms
are recorded in the visual log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from test_station_loop import Running, _config, _write_part

from core.model.bundle import BundleError
from core.station.alarm_words import words_for
from core.station.events import AlarmAcknowledged, AlarmCleared, AlarmKind, AlarmRaised, StationStarted
from core.station.headless import alarm_line
from core.station.runtime import build_runtime
from core.storage import VisualLog
from core.storage.alarms import AlarmEvent


def _raised(run: Running, kind: AlarmKind) -> list[AlarmRaised]:
    return [e for e in run.of(AlarmRaised) if e.kind is kind]


def test_no_parts_bad_run_full_disk_and_acknowledgement_are_raised_and_recorded(
    tiny_model: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    config = _config(inbox, tiny_model, tmp_path, threshold=0.0)  # every inspected part is bad
    run = Running(lambda: build_runtime(config), config)
    # A disk floor above any disk's size: the disk alarm must be raised, naming what it found.
    run.loop.settings = dataclasses.replace(
        run.loop.settings, expected_part_interval_s=1.0, bad_run_length=3, disk_floor_mb=1e12
    )
    run.start()
    try:
        run.wait_for(lambda: run.of(StationStarted), 60, "start")
        info = run.of(StationStarted)[0].info
        assert info.log_url == config.db_url and info.media_root == str(config.media_root)
        run.wait_for(lambda: _raised(run, AlarmKind.NO_PARTS), 3, "no-parts alarm")
        alarm = _raised(run, AlarmKind.NO_PARTS)[0]
        assert (alarm.plain, alarm.fix) == words_for(AlarmKind.NO_PARTS)
        assert alarm.message == "no parts for 1 s"
        run.wait_for(lambda: _raised(run, AlarmKind.DISK), 3, "disk alarm")
        disk = _raised(run, AlarmKind.DISK)[0]
        assert "MB free at" in disk.message and "floor 1e+12 MB" in disk.message
        assert disk.plain == "The disk is nearly full"

        for index in range(3):
            _write_part(inbox, f"p{index}.png", index)
        run.wait_for(lambda: _raised(run, AlarmKind.BAD_RUN), 30, "bad-run alarm")
        assert AlarmCleared(kind=AlarmKind.NO_PARTS) in run.of(AlarmCleared)
        assert _raised(run, AlarmKind.BAD_RUN)[0].message.startswith("3 bad parts in a row")

        run.loop.acknowledge(AlarmKind.BAD_RUN, "anna")
        run.wait_for(lambda: run.of(AlarmAcknowledged), 3, "acknowledgement")
        ack = run.of(AlarmAcknowledged)[0]
        assert ack == AlarmAcknowledged(
            kind=AlarmKind.BAD_RUN, user="anna", message=words_for(AlarmKind.BAD_RUN)[0], recorded=True
        )
        # The headless station prints the same events: the words and the fix first, then the detail.
        assert alarm_line(disk).startswith(
            "ALARM disk: The disk is nearly full. Free space on the media / log disk"
        ) and alarm_line(disk).endswith(f"(details: {disk.message})")
        assert alarm_line(ack) == "alarm acknowledged by anna: bad_run (recorded in the log)"
        assert alarm_line(AlarmCleared(kind=AlarmKind.NO_PARTS)) == "alarm cleared: no_parts"
    finally:
        run.close()
    with VisualLog(config.db_url, media_root=config.media_root, station="line-1") as log:
        rows = [(r.kind, r.event, r.user) for r in log.alarms()]
        acked = [r for r in log.alarms() if r.event is AlarmEvent.ACKNOWLEDGED]
    # NO_PARTS may be raised again once the three parts are done (1 s without a part).
    raised = [kind for kind, event, _ in rows if event is AlarmEvent.RAISED]
    assert {"no_parts", "disk", "bad_run"} <= set(raised)
    assert raised.count("disk") == 1  # raised once while it lasts, not at every check
    assert ("bad_run", AlarmEvent.ACKNOWLEDGED, "anna") in rows
    assert acked[0].raised_at is not None and acked[0].raised_at <= acked[0].created_at


def test_a_refused_model_is_said_in_plain_words_and_kept_until_a_log_is_reachable(tmp_path: Path) -> None:
    def factory():
        raise BundleError(f"{tmp_path / 'model'} is not a model bundle: model.json is missing")

    config = _config(tmp_path / "inbox", tmp_path / "model", tmp_path)
    run = Running(factory, config)
    run.loop.settings = dataclasses.replace(run.loop.settings, backoff_first_s=0.05, backoff_max_s=0.05)
    run.start()
    try:
        run.wait_for(lambda: _raised(run, AlarmKind.STATION), 3, "start alarm")
        run.loop.acknowledge(AlarmKind.STATION)
        run.wait_for(lambda: run.of(AlarmAcknowledged), 3, "acknowledgement")
    finally:
        run.close()
    alarm = _raised(run, AlarmKind.STATION)[0]
    assert alarm.message.startswith("Station could not start: BundleError: ")  # the technical line
    assert (alarm.plain, alarm.fix) == words_for(AlarmKind.MODEL)
    assert "Error" not in alarm.plain + alarm.fix
    # No log could be opened: the acknowledgement is said to be unrecorded, not silently lost.
    assert run.of(AlarmAcknowledged)[0].recorded is False
    assert run.of(AlarmAcknowledged)[0].user == "operator"
