"""The README's demo, for real: train the demo model, feed parts, run the station window."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


# The subprocesses carry their own limits (600 s and 300 s): the suite-wide 300 s would cut the
# demo's training short on a loaded machine (it did, with a training run beside it).
@pytest.mark.timeout(960)
def test_demo_quit_after_leaves_rows_with_heatmaps(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(os.environ, INSPECTOR_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    shot = tmp_path / "station.png"
    cmd = [
        sys.executable,
        "-m",
        "core.cli",
        "demo",
        "--quit-after",
        "12",
        "--rate",
        "6",
        "--screenshot",
        str(shot),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "demo model trained" in proc.stderr

    db = home / "inspector.sqlite"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT verdict, score, heatmap_path FROM decisions").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(rows) == 12
    for verdict, score, heatmap in rows:
        assert verdict in ("good", "bad") and 0.0 <= score <= 1.0
        assert (home / "media" / heatmap).is_file()
    assert shot.is_file() and shot.stat().st_size > 10_000

    # A second run reuses the cached model and adds rows to the same log.
    proc = subprocess.run(cmd[:-2], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "demo model trained" not in proc.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 24
