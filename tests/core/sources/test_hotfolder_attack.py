"""The hot folder against an outside attack: paused writers, frozen cameras, long names, two
stations on one inbox, FIFOs and dangling links, moves that fail. Real folders, real files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from folder_helpers import DecisionLog, png_bytes, take_parts  # noqa: E402

from core.common.errors import UserError
from core.common.types import Verdict
from core.sources.hotfolder import HotFolderSource
from core.sources.hotfolder_files import tagged_name
from core.sources.inbox_lock import LOCK_NAME, InboxLockedError


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


# -- 1. a writer that pauses ---------------------------------------------------------------------


def test_writer_pausing_2_5_s_with_default_settings_is_inspected_whole(inbox: Path) -> None:
    """The defaults of settle and grace outlast a 2.5 s pause of a writer that keeps the file open."""
    data = png_bytes(1, 256)
    log = DecisionLog()
    with HotFolderSource(inbox, watch=False, seen=log.seen) as source:
        with open(inbox / "paused.png", "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            until = time.monotonic() + 2.5
            while time.monotonic() < until:
                part = source.next_part(0.1)
                assert part is None, part.error  # never judged on half a file
        with open(inbox / "paused.png", "ab") as fh:
            fh.write(data[len(data) // 2 :])
        parts = take_parts(source, log, 1)
    assert [(p.error, p.image is not None) for p in parts] == [(None, True)]
    assert (inbox / "processed" / "paused.png").read_bytes() == data


def test_file_that_grows_after_it_was_rejected_comes_back_and_is_inspected(inbox: Path) -> None:
    """A pause longer than settle + grace: the file is rejected as truncated while its writer
    still holds it open; when the writer finishes (into rejected/), the file comes back."""
    data = png_bytes(2, 256)
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, truncated_grace_s=0.2, watch=False, seen=log.seen) as source:
        with open(inbox / "slow.png", "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            first = take_parts(source, log, 1, extra_s=0.0)
            assert [("truncated" in (p.error or "")) for p in first] == [True]
            assert (inbox / "rejected" / "slow.png").is_file()  # moved while open
            fh.write(data[len(data) // 2 :])  # the writer goes on, into the moved file
        later = take_parts(source, log, 1)
    assert [(p.error, p.image is not None) for p in later] == [(None, True)]
    assert Path(later[0].source_ref).name == "slow.png"
    assert (inbox / "processed" / "slow.png").read_bytes() == data
    assert not (inbox / "rejected" / "slow.png").exists()


def test_a_file_that_grows_while_the_station_is_down_comes_back_after_the_restart(inbox: Path) -> None:
    """The watch on rejected/ outlives the station: rejected as truncated, the station stops (a
    crash or a restart), the writer finishes into rejected/, the next station brings it back."""
    data = png_bytes(6, 256)
    log = DecisionLog()
    with open(inbox / "paused.png", "wb") as fh:
        fh.write(data[: len(data) // 3])
        fh.flush()
        with HotFolderSource(inbox, settle_s=0.1, truncated_grace_s=0.2, watch=False, seen=log.seen) as first:
            rejected = take_parts(first, log, 1, extra_s=0.0)
        assert [("truncated" in (p.error or "")) for p in rejected] == [True]
        assert (inbox / "rejected" / "paused.png").is_file()
        fh.write(data[len(data) // 3 :])  # finished while no station runs
    with HotFolderSource(inbox, settle_s=0.1, truncated_grace_s=0.2, watch=False, seen=log.seen) as second:
        later = take_parts(second, log, 1)
    assert [(p.error, p.image is not None) for p in later] == [(None, True)]
    assert (inbox / "processed" / "paused.png").read_bytes() == data
    assert not (inbox / "rejected" / "paused.png").exists()


def test_a_rejected_file_that_never_grows_stays_rejected(inbox: Path) -> None:
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, truncated_grace_s=0.1, watch=False, seen=log.seen) as source:
        (inbox / "cut.png").write_bytes(png_bytes(3, 128)[:200])
        parts = take_parts(source, log, 1, extra_s=1.0)
    assert len(parts) == 1 and "truncated" in (parts[0].error or "")
    assert (inbox / "rejected" / "cut.png").is_file()


# -- 2. the same bytes under another name ----------------------------------------------------


def test_frozen_camera_duplicates_are_rows_and_a_run_of_them_warns_until_a_new_part(inbox: Path) -> None:
    frozen = png_bytes(4, 128)
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, seen=log.seen, duplicate_alarm_after=3) as source:
        (inbox / "frame_000.png").write_bytes(frozen)
        first = take_parts(source, log, 1, extra_s=0.0)
        for i in (1, 2):
            (inbox / f"frame_{i:03d}.png").write_bytes(frozen)
        two = take_parts(source, log, 2, extra_s=0.0)
        assert source.status().warning == ""  # two in a row: not yet
        (inbox / "frame_003.png").write_bytes(frozen)
        three = take_parts(source, log, 1, extra_s=0.0)
        warning = source.status().warning
        (inbox / "frame_004.png").write_bytes(png_bytes(5, 128))  # the camera is back
        fresh = take_parts(source, log, 1)
        last = source.status().warning  # shown once more after the run ended: never missed
        after = source.status().warning
    reason = f"duplicate of {first[0].part_id} (frame_000.png)"
    assert [p.error for p in two + three] == [reason] * 3
    assert all(p.image is None for p in two + three)
    assert [d.verdict for d in log.decisions] == [Verdict.GOOD] + [Verdict.NOT_INSPECTED] * 3 + [Verdict.GOOD]
    assert "3 or more files in a row" in warning and "frame_001.png" in warning
    assert fresh[0].error is None and last == warning and after == ""
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == [f"frame_{i:03d}.png" for i in (1, 2, 3)]


# -- 3. long names ---------------------------------------------------------------------------


def test_a_250_byte_name_seen_twice_is_moved_both_times(inbox: Path) -> None:
    name = "ü" * 61 + "x" * 124 + ".png"  # 61*2 + 124 + 4 = 250 bytes; cut must not split a ü
    assert len(name.encode()) == 250
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, seen=log.seen) as source:
        (inbox / name).write_bytes(png_bytes(6, 128))
        take_parts(source, log, 1, extra_s=0.0)
        (inbox / name).write_bytes(png_bytes(7, 128))  # the same name, new bytes: the name is taken
        again = take_parts(source, log, 1)
    assert len(again) == 1 and again[0].error is None
    moved = sorted(os.listdir(inbox / "processed"))
    assert len(moved) == 2 and name in moved
    tagged = next(n for n in moved if n != name)
    assert len(tagged.encode()) <= 255 and tagged.endswith(".png") and again[0].part_id in tagged
    tagged.encode("utf-8")  # whole characters only (a split one would be a surrogate here)
    assert [p for p in inbox.iterdir() if p.is_file()] == []


def test_tagged_names_fit_and_differ() -> None:
    tag = "01J0000000000000000000TAG0"
    assert tagged_name("part.png", tag) == f"part.{tag}.png"
    long_a, long_b = "a" * 240 + "1.jpeg", "a" * 240 + "2.jpeg"
    ta, tb = tagged_name(long_a, tag), tagged_name(long_b, tag)
    assert len(ta.encode()) <= 255 and ta.endswith(f".{tag}.jpeg") and ta != tb
    cjk = tagged_name("部" * 84 + ".png", tag)  # 3-byte characters: 256 bytes before tagging
    assert len(cjk.encode()) <= 255 and cjk.encode().decode() == cjk


# -- 4. two stations on one inbox ------------------------------------------------------------


def test_a_second_source_on_the_same_inbox_is_refused_naming_the_holder(inbox: Path) -> None:
    with HotFolderSource(inbox, settle_s=0.1), pytest.raises(InboxLockedError) as refused:
        HotFolderSource(inbox, settle_s=0.1)
    message = str(refused.value)
    assert isinstance(refused.value, UserError)
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message
    with HotFolderSource(inbox, settle_s=0.1):  # free again once the first closed
        pass
    assert not (inbox / LOCK_NAME).exists()


def test_another_process_holding_the_inbox_is_refused_and_its_crash_frees_it(inbox: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from core.sources.hotfolder import HotFolderSource\n"
            f"s = HotFolderSource(Path({str(inbox)!r}), watch=False)\n"
            "print('held', flush=True); time.sleep(60)"
        )],
        stdout=subprocess.PIPE, cwd=Path(__file__).parents[3], text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(InboxLockedError, match=f"pid {holder.pid}"):
            HotFolderSource(inbox, watch=False)
        cli = subprocess.run(
            [sys.executable, "-c", "import sys; from core.cli.main import main; sys.exit(main())", "probe", f"hotfolder:{inbox}", "--seconds", "0.2"],
            capture_output=True, text=True, cwd=Path(__file__).parents[3], timeout=60,
        )  # fmt: skip
        assert cli.returncode == 2, cli.stderr
        assert cli.stderr.strip().count("\n") == 0 and f"pid {holder.pid}" in cli.stderr
    finally:
        holder.kill()  # a crash: no clean release, the lock file stays behind
        holder.wait()
    assert (inbox / LOCK_NAME).exists()
    with HotFolderSource(inbox, watch=False):  # the OS let go of the dead holder's lock
        assert f"pid {os.getpid()}" in (inbox / LOCK_NAME).read_text()


def test_a_stale_lock_file_naming_a_dead_process_is_taken_over(inbox: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (inbox / LOCK_NAME).parent.mkdir()
    (inbox / LOCK_NAME).write_text(f"host {socket.gethostname()} pid {dead.pid} since 2020-01-01\n")
    with HotFolderSource(inbox, watch=False):
        assert f"pid {os.getpid()}" in (inbox / LOCK_NAME).read_text()


# -- 5. entries that are not regular files ---------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_dangling_links_and_fifos_get_a_row_each_and_are_never_opened(tmp_path: Path, inbox: Path) -> None:
    os.symlink(tmp_path / "nowhere.png", inbox / "dangling.png")
    os.mkfifo(inbox / "pipe.png")
    (tmp_path / "real.png").write_bytes(png_bytes(8, 128))
    os.symlink(tmp_path / "real.png", inbox / "linked.png")  # a link to a file is a file
    log = DecisionLog()
    with HotFolderSource(inbox, settle_s=0.1, seen=log.seen) as source:
        parts = take_parts(source, log, 3, limit_s=10.0, extra_s=0.5)
    by_name = {Path(p.source_ref).name: p.error for p in parts}
    assert by_name == {
        "dangling.png": "not a regular file: dangling symbolic link",
        "pipe.png": "not a regular file: a FIFO",
        "linked.png": None,
    }
    assert sorted(os.listdir(inbox / "rejected")) == ["dangling.png", "pipe.png"]
    assert os.listdir(inbox / "processed") == ["linked.png"]


# -- 6. moves that fail ----------------------------------------------------------------------


def test_a_failing_move_warns_until_a_move_succeeds_and_the_file_leaves_later(
    tmp_path: Path, inbox: Path
) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_bytes(b"a file where the processed folder's parent should be")
    log = DecisionLog()
    with HotFolderSource(
        inbox, settle_s=0.1, scan_interval_s=0.1, seen=log.seen, processed_dir=blocker / "done"
    ) as source:
        (inbox / "a.png").write_bytes(png_bytes(9, 128))
        first = take_parts(source, log, 1, extra_s=0.5)  # taken once, though it stays in the inbox
        warning = source.status().warning
        assert (inbox / "a.png").is_file()
        blocker.unlink()  # the cause is mended: the stuck file leaves by itself
        deadline = time.monotonic() + 5
        while (inbox / "a.png").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        cleared = source.status().warning
    assert len(first) == 1 and len(log.decisions) == 1
    assert "cannot be moved out of the inbox" in warning and "done" in warning
    assert (blocker / "done" / "a.png").is_file() and cleared == ""
