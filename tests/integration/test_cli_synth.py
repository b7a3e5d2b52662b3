"""``inspector generate`` and ``inspector feed`` as the README promises them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.cli import main
from core.imaging.decode import decode_image, read_image


def test_generate_writes_the_counts_asked_as_images_that_decode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert main(["generate", str(out), "--good", "4", "--bad", "3", "--size", "64", "--seed", "5"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 7 parts to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["bad", "good"]
    good, bad = sorted((out / "good").iterdir()), sorted((out / "bad").iterdir())
    assert (len(good), len(bad)) == (4, 3)
    for path in (*good, *bad):
        assert read_image(path).shape == (64, 64)
    # The same seed makes the same parts: a data set can be made again.
    again = tmp_path / "again"
    assert main(["generate", str(again), "--good", "4", "--bad", "3", "--size", "64", "--seed", "5"]) == 0
    assert [p.read_bytes() for p in sorted((again / "bad").iterdir())] == [p.read_bytes() for p in bad]


def test_feed_puts_whole_files_into_the_inbox_at_the_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    seen: dict[str, float] = {}  # file name -> when a reader first saw it
    partial: list[str] = []
    done = threading.Event()

    def watch() -> None:
        # A reader as the station's hot folder is one: every visible name must be a whole image.
        while not done.is_set():
            for path in inbox.iterdir():
                if path.name.startswith(".") or path.name in seen:
                    continue
                seen[path.name] = time.monotonic()
                try:
                    decode_image(path.read_bytes())
                except Exception as exc:
                    partial.append(f"{path.name}: {exc}")
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        status = main(["feed", str(inbox), "--rate", "20", "--count", "8", "--size", "64"])
    finally:
        elapsed = time.monotonic() - started
        time.sleep(0.05)
        done.set()
        watcher.join()
    assert status == 0
    assert capsys.readouterr().out.strip() == f"fed 8 parts into {inbox}"
    assert partial == []
    names = sorted(p.name for p in inbox.iterdir())
    assert len(names) == 8 and not any(n.startswith(".") for n in names)  # no temporary file left
    assert sorted(seen) == names
    # 8 parts at 20/s: the last one 7/20 s after the first; rendering 64 px parts takes far less.
    assert 0.33 <= elapsed < 5.0
    arrivals = sorted(seen.values())
    assert arrivals[-1] - arrivals[0] >= 0.3
