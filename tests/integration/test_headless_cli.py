"""``inspector run --headless`` as the Docker image runs it: killed with SIGKILL mid-stream and
started again, every file ends up inspected exactly once; SIGTERM and SIGINT stop it cleanly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from core.synth.feeder import feed_hot_folder


def _env(home: Path) -> dict[str, str]:
    # One inference thread: the two cores are shared with the reader, the writer and the feeder.
    return dict(os.environ, INSPECTOR_HOME=str(home), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def _station(model: Path, inbox: Path, db: Path, home: Path, out: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "core.cli", "run", "--headless",
        "--source", f"hotfolder:{inbox}", "--model", str(model),
        "--db", f"sqlite:///{db}", "--station", "line-1", "--summary-s", "1",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(home), stdout=out.open("wb"), stderr=subprocess.PIPE)


def _holds_inbox(inbox: Path, proc: subprocess.Popen[bytes]) -> bool:
    """The station ``proc`` has started: it holds the inbox's lock (the lock file names its pid)."""
    lock = inbox / ".inspector" / "station.lock"
    try:
        return f"pid {proc.pid} " in lock.read_text()
    except OSError:
        return False


def _wait(condition, limit_s: float, proc: subprocess.Popen[bytes]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the station exited ({proc.returncode}): {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_inspects_every_file_exactly_once(
    tiny_model: Path, tmp_path: Path
) -> None:
    inbox, home, db = tmp_path / "inbox", tmp_path / "home", tmp_path / "log.sqlite"
    inbox.mkdir()
    total = 30
    feeder = threading.Thread(
        target=feed_hot_folder, kwargs={"inbox": inbox, "rate_hz": 10, "count": total, "size": 96, "seed": 5}
    )
    first = _station(tiny_model, inbox, db, home, tmp_path / "first.jsonl")
    try:
        # Feed only once the station holds the inbox: on a loaded machine its start can take
        # longer than the whole feed, and the kill would then come after the stream, not in it.
        _wait(lambda: _holds_inbox(inbox, first), 60, first)
        feeder.start()
        _wait(lambda: _count(db) >= 8, 60, first)
        first.send_signal(signal.SIGKILL)  # no goodbye: mid-stream, maybe between commit and move
        first.wait(timeout=10)
        killed_at = _count(db)
        second = _station(tiny_model, inbox, db, home, tmp_path / "second.jsonl")
        try:
            _wait(lambda: _holds_inbox(inbox, second), 60, second)  # its signal handlers are set
            feeder.join(timeout=60)
            _wait(lambda: _count(db) >= total and not [p for p in inbox.iterdir() if p.is_file()], 60, second)
            time.sleep(0.5)
            second.send_signal(signal.SIGTERM)
            code = second.wait(timeout=30)
            stderr = second.stderr.read().decode()  # type: ignore[union-attr]
            assert code == 0, stderr[-3000:]
        finally:
            if second.poll() is None:
                second.kill()
    finally:
        if first.poll() is None:
            first.kill()
        feeder.join(timeout=60)

    assert "parts/s" in stderr and "(stopped)" in stderr, stderr[-2000:]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT source_ref, verdict, heatmap_path FROM decisions").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    names = Counter(Path(ref).name for ref, _, _ in rows)
    fed = {f"part_{i:06d}_{kind}.png" for i in range(total) for kind in ("good", "bad")}
    assert len(rows) == total and set(names.values()) == {1} and set(names) <= fed
    assert all(verdict in ("good", "bad") and (home / "media" / heat).is_file() for _, verdict, heat in rows)
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == sorted(names)
    assert [p for p in inbox.iterdir() if p.is_file()] == []
    # The second run printed one JSON line per row it made (stdout output).
    lines = (tmp_path / "second.jsonl").read_text().splitlines()
    assert len(lines) == total - killed_at
    assert all(json.loads(line)["verdict"] in ("good", "bad") for line in lines)


def _processed_and_rejected(inbox: Path) -> list[str]:
    return sorted(
        p.name for d in ("processed", "rejected") if (inbox / d).is_dir() for p in (inbox / d).iterdir()
    )


@pytest.mark.slow
def test_sigint_while_parts_flow_finishes_them_and_exits_0(tiny_model: Path, tmp_path: Path) -> None:
    inbox, home, db = tmp_path / "inbox", tmp_path / "home", tmp_path / "log.sqlite"
    inbox.mkdir()
    stop_feed = threading.Event()
    feeder = threading.Thread(
        target=feed_hot_folder,
        kwargs={"inbox": inbox, "rate_hz": 20, "count": 400, "size": 96, "seed": 8, "stop": stop_feed},
    )
    station = _station(tiny_model, inbox, db, home, tmp_path / "out.jsonl")
    try:
        feeder.start()
        _wait(lambda: _count(db) >= 6, 60, station)
        station.send_signal(signal.SIGINT)  # Ctrl+C in the terminal, while parts keep arriving
        code = station.wait(timeout=30)
        stderr = station.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        stop_feed.set()
        feeder.join(timeout=30)
        if station.poll() is None:
            station.kill()
    assert code == 0, stderr[-3000:]
    assert "(stopped)" in stderr and "Traceback" not in stderr, stderr[-3000:]
    with sqlite3.connect(db) as conn:
        rows = [Path(r[0]).name for r in conn.execute("SELECT source_ref FROM decisions")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Every file that left the inbox has its row, and every row's file left the inbox: nothing
    # in flight was dropped or left half done.
    moved = _processed_and_rejected(inbox)
    assert len(moved) >= 6 and sorted(rows) == moved
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(Path(line["source"]).name for line in lines) == moved


def test_a_second_station_on_a_held_inbox_is_refused_in_one_line(tiny_model: Path, tmp_path: Path) -> None:
    inbox, home = tmp_path / "inbox", tmp_path / "home"
    inbox.mkdir()
    first = _station(tiny_model, inbox, tmp_path / "first.sqlite", home, tmp_path / "first.jsonl")
    try:
        _wait(lambda: _holds_inbox(inbox, first), 60, first)
        second = _station(tiny_model, inbox, tmp_path / "second.sqlite", home, tmp_path / "second.jsonl")
        assert second.wait(timeout=60) == 2  # refused, not retried with back-off
        lines = [
            line
            for line in second.stderr.read().decode().splitlines()  # type: ignore[union-attr]
            if line.startswith("inspector:")
        ]
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], lines
        assert first.poll() is None  # the holder goes on
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
