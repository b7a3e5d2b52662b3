"""The hot folder on real files: slow writers, renames, repeated announcements, polling, threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from folder_helpers import DecisionLog, png_bytes, take_parts  # noqa: E402

from core.sources.hotfolder import HotFolderSource, is_network_path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def test_slow_writer_is_taken_once_and_whole(inbox: Path) -> None:
    data = png_bytes(1, 256)
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.4, seen=log.seen) as source:
        with open(inbox / "slow.png", "wb") as fh:
            for start in range(0, len(data), max(1, len(data) // 8)):
                fh.write(data[start : start + max(1, len(data) // 8)])
                fh.flush()
                assert source.next_part(0.15) is None  # never taken while it grows
        parts = take_parts(source, log, 1)
    assert len(parts) == 1
    assert parts[0].error is None and parts[0].image is not None and parts[0].image.shape == (256, 256)
    assert (inbox / "processed" / "slow.png").read_bytes() == data


def test_writer_pausing_longer_than_settle_gets_the_truncation_grace(inbox: Path) -> None:
    data = png_bytes(2, 256)
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.2, truncated_grace_s=1.5, watch=False, seen=log.seen) as source:
        (inbox / "paused.png").write_bytes(data[: len(data) // 2])
        time.sleep(0.6)  # longer than settle_s: read, found truncated, given the grace
        with open(inbox / "paused.png", "ab") as fh:
            fh.write(data[len(data) // 2 :])
        parts = take_parts(source, log, 1)
    assert [p.error for p in parts] == [None]


def test_truncated_file_that_never_completes_is_rejected_with_the_reason(inbox: Path) -> None:
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, truncated_grace_s=0.3, seen=log.seen) as source:
        (inbox / "cut.png").write_bytes(png_bytes(3)[:300])
        parts = take_parts(source, log, 1)
    assert len(parts) == 1 and "truncated PNG" in (parts[0].error or "")
    assert parts[0].image is None
    assert (inbox / "rejected" / "cut.png").is_file()


def test_renamed_into_place_is_taken_without_waiting_to_settle(tmp_path: Path, inbox: Path) -> None:
    outside = tmp_path / "staging"
    outside.mkdir()
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=5.0, seen=log.seen) as source:
        assert source.watching
        (inbox / ".part_1.png.tmp").write_bytes(png_bytes(4))  # hidden while written
        started = time.monotonic()
        os.replace(inbox / ".part_1.png.tmp", inbox / "part_1.png")
        part = source.next_part(3.0)
        waited = time.monotonic() - started
        assert part is not None and part.error is None and waited < 2.0
        log.decide(source, part)
        # Written elsewhere and moved in: a "created" event, so it settles like any copy.
        (outside / "part_2.png").write_bytes(png_bytes(5))
        os.replace(outside / "part_2.png", inbox / "part_2.png")
        assert source.next_part(1.0) is None
    assert (inbox / "processed" / "part_1.png").is_file()


def test_same_file_announced_three_times_is_one_part(inbox: Path) -> None:
    data = png_bytes(6)
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.3, seen=log.seen) as source:
        path = inbox / "part.png"
        path.write_bytes(data)
        for _ in range(3):  # created/modified/closed events and touches while it settles
            with open(path, "ab"):
                pass
            os.utime(path)
            time.sleep(0.05)
        first = take_parts(source, log, 1)
        # The same file again (a crash before its move): decided already, moved without a row.
        (inbox / "part.png").write_bytes(data)
        again = take_parts(source, log, 0, extra_s=0.8)
        # The same bytes under other names: a row each, not inspected, naming the first part.
        for name in ("part-copy.png", "part-copy-2.png"):
            (inbox / name).write_bytes(data)
        copies = take_parts(source, log, 2)
    assert len(first) == 1 and again == []
    reason = f"duplicate of {first[0].part_id} (part.png)"
    assert sorted(Path(p.source_ref).name for p in copies) == ["part-copy-2.png", "part-copy.png"]
    assert [(p.error, p.image) for p in copies] == [(reason, None), (reason, None)]
    assert source.duplicates == 3
    assert sorted(p.name for p in (inbox / "processed").iterdir())[-1] == "part.png"
    assert len(list((inbox / "processed").iterdir())) == 2  # the second renamed, never overwritten
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == ["part-copy-2.png", "part-copy.png"]
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []


def test_broken_files_with_equal_bytes_each_get_their_row(inbox: Path) -> None:
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, truncated_grace_s=0.1, seen=log.seen) as source:
        for name in ("empty-a.png", "empty-b.png", "empty-c.jpg"):
            (inbox / name).write_bytes(b"")
        parts = take_parts(source, log, 3)
        # Announced again after its row (a crash before the move): no second row.
        (inbox / "empty-a.png").write_bytes(b"")
        again = take_parts(source, log, 0, extra_s=0.6)
    assert sorted(Path(p.source_ref).name for p in parts) == ["empty-a.png", "empty-b.png", "empty-c.jpg"]
    assert all("empty file" in (p.error or "") for p in parts)
    assert again == []


def test_same_bytes_while_the_first_is_in_flight_wait_for_its_decision(inbox: Path) -> None:
    data = png_bytes(7)
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, seen=log.seen) as source:
        (inbox / "a.png").write_bytes(data)
        (inbox / "b.png").write_bytes(data)
        first = source.next_part(3.0)
        assert first is not None
        assert source.next_part(0.6) is None  # b.png waits: its twin is not decided yet
        log.decide(source, first)
        second = source.next_part(0.6)  # now decided: b.png is a duplicate of it
        assert second is not None
        log.decide(source, second)
    assert second.error == f"duplicate of {first.part_id} ({Path(first.source_ref).name})"
    assert source.duplicates == 1
    assert len(list((inbox / "processed").iterdir())) == 1 and len(list((inbox / "rejected").iterdir())) == 1


def test_polling_only_finds_every_file(inbox: Path) -> None:
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, scan_interval_s=0.1, watch=False, seen=log.seen) as source:
        assert not source.watching
        for i in range(20):
            (inbox / f"p{i:02d}.png").write_bytes(png_bytes(100 + i, 48))
        parts = take_parts(source, log, 20)
        status = source.status()
    assert sorted(Path(p.source_ref).name for p in parts) == [f"p{i:02d}.png" for i in range(20)]
    assert status.online and status.parts == 20 and "polling" in status.message


def test_released_part_is_offered_again(inbox: Path) -> None:
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, seen=log.seen) as source:
        (inbox / "a.png").write_bytes(png_bytes(8))
        part = source.next_part(3.0)
        assert part is not None
        source.release(part)  # e.g. the disk was full: the file stays in the inbox
        assert (inbox / "a.png").is_file()
        again = source.next_part(3.0)
    assert again is not None and again.source_ref == part.source_ref and again.part_id != part.part_id


def test_unreachable_inbox_is_reported_and_recovers(tmp_path: Path) -> None:
    inbox = tmp_path / "share"
    inbox.mkdir()
    with HotFolderSource(inbox, settle_s=0.1, scan_interval_s=0.05, watch=False) as source:
        moved = tmp_path / "share-away"
        inbox.rename(moved)
        deadline = time.monotonic() + 3
        while source.status().online and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not source.status().online and "unreachable" in source.status().message
        moved.rename(inbox)
        (inbox / "back.png").write_bytes(png_bytes(9))
        part = source.next_part(3.0)
    assert part is not None and source.status().online


def test_close_leaves_no_thread_behind(inbox: Path) -> None:
    before = set(threading.enumerate())
    source = HotFolderSource(inbox, settle_s=0.1)
    (inbox / "a.png").write_bytes(png_bytes(10))
    assert source.next_part(3.0) is not None
    source.close()
    source.close()
    assert set(threading.enumerate()) - before == set()


def test_local_folders_are_watched_and_unc_paths_polled(tmp_path: Path) -> None:
    assert not is_network_path(tmp_path)
    assert is_network_path(Path("//fileserver/line3/inbox"))
