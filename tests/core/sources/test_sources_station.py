"""The station runtime on camera sources, with the real tiny model and visual log.

A recorded line (``video:FILE``) gives exactly one row per part that passed; a live stream whose
parts arrive while the station is busy records the overflow as not-inspected rows, so the rows
add up to the parts the camera delivered.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from source_helpers import StreamServer, conveyor_frames, free_port, needs_ffmpeg, write_video

from core.sources.live import OVERFLOW_REASON
from core.station.config import SourceOptions, StationConfig
from core.station.events import PartInspected, StationEvent, StationStopped
from core.station.loop import LoopSettings, StationLoop
from core.station.runtime import build_runtime


@pytest.fixture(autouse=True)
def _one_inference_thread() -> object:
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _rows(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT source_ref, verdict, reason FROM decisions ORDER BY created_at"
        ).fetchall()


def _part_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT part_id FROM decisions")]


def test_recorded_line_gives_one_row_per_part_and_ends(tiny_model: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "line.avi", conveyor_frames(5, width=192, height=144, step_px=8))
    db = tmp_path / "log.sqlite"
    config = StationConfig(
        source=f"video:{video}",
        model=tiny_model,
        db_url=f"sqlite:///{db}",
        media_root=tmp_path / "media",
        threads=1,
    )
    events: list[StationEvent] = []
    loop = StationLoop(lambda: build_runtime(config), settings=LoopSettings.from_config(config))
    loop.subscribe(events.append)
    done = loop.run()  # returns by itself at the end of the video
    assert events[-1] == StationStopped(parts_done=5, finished=True)
    rows = _rows(db)
    assert done == 5 and len(rows) == 5
    assert sorted(e.item.decision.part_id for e in events if isinstance(e, PartInspected)) == sorted(
        _part_ids(db)
    )
    assert all(verdict in ("good", "bad") for _, verdict, _ in rows)
    assert len({ref for ref, _, _ in rows}) == 5 and all(ref.startswith("video:") for ref, _, _ in rows)


@needs_ffmpeg
def test_busy_station_records_every_overflowed_part(tiny_model: Path, tmp_path: Path) -> None:
    server = StreamServer(free_port(), fps=20).start()
    db = tmp_path / "log.sqlite"
    config = StationConfig(
        source=f"camera:{server.url}",
        model=tiny_model,
        db_url=f"sqlite:///{db}",
        media_root=tmp_path / "media",
        threads=1,
        source_options=SourceOptions(trigger="every-frame", queue_size=3),
    )
    runtime = build_runtime(config)
    statuses = []
    runtime.status_listeners.append(statuses.append)
    try:
        runtime.process_next(0.0)  # first poll: the state is reported
        time.sleep(1.5)  # the station is busy elsewhere: frames pile up
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            runtime.process_next(0.1)
    finally:
        runtime.close()  # stops the camera, then records what it still holds
        server.kill()
    status = runtime.source_status
    assert status is not None
    rows = _rows(db)
    verdicts = Counter(verdict for _, verdict, _ in rows)
    overflow_rows = [r for r in rows if r[2] == OVERFLOW_REASON]
    assert len(overflow_rows) >= 10 and verdicts["not_inspected"] == len(overflow_rows)
    assert verdicts["good"] + verdicts["bad"] >= 3
    numbers = sorted(int(ref.rsplit("#", 1)[1]) for ref, _, _ in rows)
    assert numbers == list(range(1, len(rows) + 1))  # every frame: one row, inspected or not
    assert any(s.online for s in statuses) and status.overflowed == len(overflow_rows)
