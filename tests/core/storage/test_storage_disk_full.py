"""A really full disk (a 2 MiB tmpfs): a clear error, nothing committed lost, recording resumes.

Mounting needs root (CI runs as root); elsewhere the tests skip, and the ``max_page_count``
variant in test_storage_log.py still covers the database side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from storage_helpers import MODEL_HASH, FakeClock, make_inspection

from core.common.types import Decision, Part
from core.storage import StorageError, VisualLog

pytestmark = pytest.mark.skipif(os.name != "posix", reason="tmpfs is Linux")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _part(number: int, noise: bool) -> Part:
    rng = np.random.default_rng(number)
    # Noise does not compress: every image is ~40 kB of PNG on the media side.
    size = (200, 200) if noise else (8, 8)
    image = rng.integers(0, 256, size=size, dtype=np.uint8)
    return Part(source_ref=f"part-{number}", arrived_at=FakeClock()(), image=image)


@pytest.mark.parametrize("filling", ["media", "database"])
def test_a_full_disk_gives_a_clear_error_loses_nothing_and_recovers(small_disk: Path, filling: str) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 300_000)  # freed later: the operator makes room
    log = VisualLog(f"sqlite:///{small_disk / 'db' / 'inspector.sqlite'}", media_root=small_disk / "media")
    committed: list[Decision] = []
    error: StorageError | None = None
    try:
        for number in range(500):
            part = _part(number, noise=filling == "media")
            try:
                if filling == "media":
                    committed.append(log.record(part, make_inspection(), model_hash=MODEL_HASH))
                else:  # rows only: a long reason and no image make the database file grow
                    bare = Part(source_ref=part.source_ref, arrived_at=part.arrived_at, image=None)
                    committed.append(
                        log.record(bare, None, model_hash=None, reason="x" * 20_000 + str(number))
                    )
            except StorageError as exc:
                error = exc
                break
        assert error is not None, "the disk never filled up"
        assert error.problem == "disk_full" and "the disk is full" in str(error)
        assert ("media" if filling == "media" else "inspector.sqlite") in error.where
        assert len(committed) > 3

        # Everything committed is intact, and the chain still ends at the last committed record.
        assert log.count() == len(committed)
        assert all(log.get(d.part_id) == d for d in committed)
        assert log.verify().ok and log.chain_head().seq == len(committed)
        with log.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"

        ballast.unlink()  # room again: the same log records again, without reopening
        again = log.record(_part(1000, noise=False), make_inspection(), model_hash=MODEL_HASH)
        assert log.get(again.part_id) == again and log.load_heatmap(again) is not None
        assert log.verify().ok and log.count() == len(committed) + 1
    finally:
        log.close()
