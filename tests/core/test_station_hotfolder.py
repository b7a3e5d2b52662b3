"""The station on a real hot folder with the real tiny model and visual log.

Every file gets exactly one row (or, when its bytes were decided already, none and a move),
broken inputs are rejected with their reason and never classified, and the station survives all
of it, a burst of 2,000 files included (a storage outage: test_station_loop.py).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "sources"))
from source_helpers import make_png, png_chunk  # noqa: E402

from core.common.fileio import sha256_bytes  # noqa: E402
from core.common.types import Part  # noqa: E402
from core.sources.hotfolder import HotFolderSource  # noqa: E402
from core.station.config import SourceOptions, StationConfig  # noqa: E402
from core.station.runtime import StationRuntime, build_runtime  # noqa: E402
from core.storage import VisualLog  # noqa: E402
from core.synth.parts import part_image  # noqa: E402

FAST_SOURCE = SourceOptions(settle_s=0.1, scan_interval_s=0.1, truncated_grace_s=0.2)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Log and media on tmpfs when there is one: fsync there is cheap, so 2,000 rows fit the budget."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="inspector-test-", dir=shm))
        yield folder
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path / "store"


@pytest.fixture(autouse=True)
def _one_inference_thread() -> object:
    """One torch thread: on two cores shared with the reader and writer threads (and, on a busy
    machine, other processes) more threads spin against each other and run many times slower."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _config(inbox: Path, model: Path, store: Path, **fields: object) -> StationConfig:
    return StationConfig(
        source=f"hotfolder:{inbox}",
        model=model,
        db_url=f"sqlite:///{store / 'log.sqlite'}",
        media_root=store / "media",
        station_name="line-1",
        source_options=FAST_SOURCE,
        threads=1,
        **fields,  # type: ignore[arg-type]
    )


def _runtime(inbox: Path, model: Path, store: Path, **fields: object) -> StationRuntime:
    return build_runtime(_config(inbox, model, store, **fields))


def _rows(store: Path) -> list[tuple[str, str, str | None, str | None]]:
    with sqlite3.connect(store / "log.sqlite") as conn:
        return conn.execute("SELECT source_ref, verdict, reason, heatmap_path FROM decisions").fetchall()


def _run_until(runtime: StationRuntime, rows: int, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while runtime.parts_done < rows and time.monotonic() < deadline:
        runtime.process_next(0.2)
    runtime.drain()


def _encode(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _broken_corpus(inbox: Path) -> dict[bytes, str]:
    """File name (bytes, so undecodable names work too) -> what its row must say."""
    part = part_image(5, 0, defective=False, size=192)[0]
    bad = part_image(5, 1, defective=True, size=192)[0]
    jpeg = _encode(".jpg", part)
    png = _encode(".png", bad)
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + png_chunk(b"IEND", b"")
    )
    rgba = np.dstack([cv2.cvtColor(part, cv2.COLOR_GRAY2BGR), np.full(part.shape, 255, np.uint8)])
    palette = make_png(
        192, 192, 3, [bytes((part[y] // 86).tolist()) for y in range(192)],
        extra=png_chunk(b"PLTE", bytes([0, 0, 0, 90, 90, 90, 180, 180, 180])),
    )  # fmt: skip
    files = {
        b"good.jpg": (jpeg, "inspected"),
        b"bad.png": (png, "inspected"),
        b"deep-16bit.png": (_encode(".png", part.astype(np.uint16) * 257), "inspected"),
        b"alpha-rgba.png": (_encode(".png", rgba), "inspected"),
        b"palette.png": (palette, "inspected"),
        "pièce-Ω-ü.png".encode(): (_encode(".png", part[::-1]), "inspected"),
        "部品_07 🙂.jpg".encode(): (_encode(".jpg", part[:, ::-1]), "inspected"),
        b"latin1-\xe9t\xe9.png": (_encode(".png", part.T.copy()), "inspected"),  # not UTF-8
        b"truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated JPEG"),
        b"truncated-end.jpg": (_encode(".jpg", bad)[:-2], "truncated JPEG"),
        b"truncated.png": (png[: len(png) - 30], "truncated PNG"),
        b"zero-a.png": (b"", "empty file"),
        b"zero-b.jpg": (b"", "empty file"),
        b"report.png": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n", "not an image"),
        b"notes.txt": (b"operator notes, not an image", "not an image"),
        b"bomb-60000.png": (bomb, "60000 x 60000"),
    }
    expected = {}
    for name, (data, want) in files.items():
        with open(os.path.join(os.fsencode(inbox), name), "wb") as fh:
            fh.write(data)
        expected[name] = want
    return expected


def test_broken_inputs_each_get_one_row_and_are_never_classified(
    tiny_model: Path, tmp_path: Path, store: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = _broken_corpus(inbox)
    runtime = _runtime(inbox, tiny_model, store)
    try:
        _run_until(runtime, len(expected))
        time.sleep(0.5)  # anything surplus would show up now
        assert runtime.process_next(0.3) is None
    finally:
        runtime.close()

    rows = _rows(store)
    names = Counter(os.fsencode(ref).rsplit(b"/", 1)[-1] for ref, *_ in rows)
    # undecodable bytes are shown as U+FFFD in the log: match them the same way
    shown = {
        os.fsencode(os.fsdecode(n).encode("utf-8", "surrogateescape").decode("utf-8", "replace")): n
        for n in expected
    }
    assert len(rows) == len(expected)
    assert {shown[n] for n in names} == set(expected) and set(names.values()) == {1}
    for ref, verdict, reason, heatmap in rows:
        want = expected[shown[os.fsencode(ref).rsplit(b"/", 1)[-1]]]
        if want == "inspected":
            assert verdict in ("good", "bad") and heatmap, (ref, reason)
        else:
            assert verdict == "not_inspected" and want in (reason or ""), (ref, reason)
            assert heatmap is None
    assert [p for p in inbox.iterdir() if p.is_file()] == []
    assert len(list((inbox / "rejected").iterdir())) == sum(w != "inspected" for w in expected.values())


def test_burst_of_2000_files_one_row_each(tiny_model: Path, tmp_path: Path, store: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    base = np.clip(np.random.default_rng(0).normal(30, 8, (32, 32)), 0, 255).astype(np.uint8)
    cv2.circle(base, (16, 16), 10, 200, -1)
    runtime = _runtime(inbox, tiny_model, store)
    names: list[str] = []
    started = time.monotonic()
    try:
        for i in range(2000):
            img = base.copy()
            img[0, :4] = np.frombuffer(struct.pack(">I", i), np.uint8)  # distinct bytes per file
            name = f"burst_{i:04d}.png"
            if i % 2:  # half written in place, half renamed into place
                (inbox / name).write_bytes(_encode(".png", img))
            else:
                (inbox / f".{name}.tmp").write_bytes(_encode(".png", img))
                os.replace(inbox / f".{name}.tmp", inbox / name)
            names.append(name)
            if i % 100 == 0:
                runtime.process_next(0.0)  # the station works while the burst arrives
        _run_until(runtime, 2000, limit_s=70)
        assert runtime.process_next(0.3) is None
    finally:
        runtime.close()
    elapsed = time.monotonic() - started
    rows = _rows(store)
    counted = Counter(Path(ref).name for ref, *_ in rows)
    assert len(rows) == 2000 and set(counted) == set(names) and set(counted.values()) == {1}
    assert all(verdict in ("good", "bad") for _, verdict, _, _ in rows)
    assert [p for p in inbox.iterdir() if p.is_file()] == []
    assert len(list((inbox / "processed").iterdir())) == 2000
    print(f"\nburst: 2000 files in {elapsed:.1f} s ({2000 / elapsed:.0f} parts/s)")


def test_file_committed_before_a_crash_is_moved_without_a_second_row(
    tiny_model: Path, tmp_path: Path, store: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = _encode(".png", part_image(9, 0, defective=False, size=128)[0])
    broken = b"\x89PNG\r\n\x1a\n"  # a header and nothing else
    (inbox / "decided.png").write_bytes(data)
    (inbox / "decided-broken.png").write_bytes(broken)
    (inbox / "new.png").write_bytes(_encode(".png", part_image(9, 1, defective=True, size=128)[0]))
    # The previous run committed the rows of the first two files and was killed before moving them.
    with VisualLog(f"sqlite:///{store / 'log.sqlite'}", media_root=store / "media", station="line-1") as log:
        from core.inference.inspector import Inspector

        inspection = Inspector(tiny_model).inspect(cv2.imdecode(np.frombuffer(data, np.uint8), 0))
        for name, payload, result in (
            ("decided.png", data, inspection),
            ("decided-broken.png", broken, None),
        ):
            part = Part(
                source_ref=str(inbox / name),
                arrived_at=datetime.now(UTC),
                image=None,
                content_hash=sha256_bytes(payload),
                error=None if result else "truncated PNG (no header)",
            )
            log.record(part, result, model_hash="a" * 64 if result else None)
    runtime = _runtime(inbox, tiny_model, store)
    try:
        _run_until(runtime, 1)
        assert runtime.process_next(0.5) is None
    finally:
        runtime.close()
    rows = _rows(store)
    assert sorted(Path(ref).name for ref, *_ in rows) == ["decided-broken.png", "decided.png", "new.png"]
    assert (inbox / "processed" / "decided.png").is_file()
    assert (inbox / "rejected" / "decided-broken.png").is_file()
    assert (inbox / "processed" / "new.png").is_file()


def test_hot_folder_options_of_the_station_configuration_reach_the_source(
    tiny_model: Path, tmp_path: Path, store: Path
) -> None:
    inbox = tmp_path / "inbox"
    options = SourceOptions(
        settle_s=0.7, truncated_grace_s=4.0, rejected_watch_s=30.0, duplicate_alarm_after=5
    )
    runtime = build_runtime(_config(inbox, tiny_model, store).model_copy(update={"source_options": options}))
    try:
        source = runtime.source
        assert isinstance(source, HotFolderSource)
        assert (source.settle_s, source.truncated_grace_s) == (0.7, 4.0)
        assert (source.duplicate_alarm_after, source.rejected_watch_s) == (5, 30.0)
    finally:
        runtime.close()
    defaults = SourceOptions.model_json_schema()["properties"]
    for name in ("settle_s", "truncated_grace_s", "rejected_watch_s", "duplicate_alarm_after"):
        assert "default" in defaults[name]["description"], name  # said where operators read it


def test_frozen_frames_fifos_and_dangling_links_are_rows_and_the_duplicate_run_is_an_alarm(
    tiny_model: Path, tmp_path: Path, store: Path
) -> None:
    from core.station.events import AlarmCleared, AlarmKind, AlarmRaised, StationEvent
    from core.station.loop import LoopSettings, StationLoop

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    frozen = _encode(".png", part_image(11, 0, defective=False, size=96)[0])
    config = _config(inbox, tiny_model, store, status_poll_s=0.05)
    loop = StationLoop(lambda: build_runtime(config), settings=LoopSettings.from_config(config))
    events: list[StationEvent] = []
    loop.subscribe(events.append)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:

        def wait_rows(n: int) -> None:
            deadline = time.monotonic() + 30
            while loop.parts_done < n and time.monotonic() < deadline:
                time.sleep(0.05)
            assert loop.parts_done == n

        (inbox / "frame_0.png").write_bytes(frozen)
        wait_rows(1)
        for i in (1, 2, 3):  # the camera resends the frozen frame under new names
            (inbox / f"frame_{i}.png").write_bytes(frozen)
        if hasattr(os, "mkfifo"):
            os.mkfifo(inbox / "zz-pipe.png")  # taken after the frames (sorted by name)
        os.symlink(tmp_path / "gone.png", inbox / "zz-link.png")
        wait_rows(4 + 1 + hasattr(os, "mkfifo"))
        time.sleep(0.3)
        warned = [e for e in events if isinstance(e, AlarmRaised) and e.kind is AlarmKind.SOURCE_WARNING]
        (inbox / "frame_fresh.png").write_bytes(
            _encode(".png", part_image(11, 1, defective=True, size=96)[0])
        )
        wait_rows(6 + hasattr(os, "mkfifo"))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(
            isinstance(e, AlarmCleared) and e.kind is AlarmKind.SOURCE_WARNING for e in events
        ):
            time.sleep(0.05)
    finally:
        loop.stop()
        thread.join(30)
    rows = {Path(ref).name: (verdict, reason) for ref, verdict, reason, _ in _rows(store)}
    first_id = next(
        pid
        for pid, ref in sqlite3.connect(store / "log.sqlite").execute(
            "SELECT part_id, source_ref FROM decisions"
        )
        if ref.endswith("frame_0.png")
    )
    assert rows["frame_0.png"][0] in ("good", "bad") and rows["frame_fresh.png"][0] in ("good", "bad")
    for i in (1, 2, 3):
        assert rows[f"frame_{i}.png"] == ("not_inspected", f"duplicate of {first_id} (frame_0.png)")
    assert rows["zz-link.png"] == ("not_inspected", "not a regular file: dangling symbolic link")
    if hasattr(os, "mkfifo"):
        assert rows["zz-pipe.png"] == ("not_inspected", "not a regular file: a FIFO")
    assert len(warned) == 1 and "frozen frame" in warned[0].message
    assert any(isinstance(e, AlarmCleared) and e.kind is AlarmKind.SOURCE_WARNING for e in events)
    assert [p.name for p in inbox.iterdir() if not p.is_dir()] == []


def test_a_second_station_on_the_same_inbox_is_refused_and_every_file_has_one_row(
    tiny_model: Path, tmp_path: Path, store: Path
) -> None:
    from core.sources.inbox_lock import InboxLockedError

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(6):
        (inbox / f"p{i}.png").write_bytes(_encode(".png", part_image(12, i, defective=False, size=64)[0]))
    first = _runtime(inbox, tiny_model, store)
    try:
        with pytest.raises(InboxLockedError, match=f"pid {os.getpid()}"):
            _runtime(inbox, tiny_model, store)
        _run_until(first, 6)
    finally:
        first.close()
    assert sorted(Path(ref).name for ref, *_ in _rows(store)) == [f"p{i}.png" for i in range(6)]
