"""``inspector threshold``: the what-if as JSON against SQL, set/rollback with a log-in, and a change
that reaches a running headless station (another process) on its next part, and survives a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from known_truth import PASSWORDS, STATION, VALIDATION, make_known_log
from sqlalchemy import create_engine, text

from core.cli.main import main
from core.storage import VisualLog

_FLIPS_SQL = """
SELECT COALESCE((SELECT r.verdict FROM reviews r WHERE r.part_id = d.part_id ORDER BY r.seq DESC LIMIT 1),
                'unreviewed') AS truth,
       SUM(CASE WHEN d.score < :cur AND d.score >= :new THEN 1 ELSE 0 END) AS good_to_bad,
       SUM(CASE WHEN d.score >= :cur AND d.score < :new THEN 1 ELSE 0 END) AS bad_to_good
FROM decisions d WHERE d.score IS NOT NULL GROUP BY truth
"""


def _as(monkeypatch: pytest.MonkeyPatch, name: str, password: str | None = None) -> list[str]:
    monkeypatch.setenv("INSPECTOR_PASSWORD", password or PASSWORDS[name])
    return ["--user", name]


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_known_log(tmp_path_factory.mktemp("known-cli"))


def test_what_if_json_is_what_sql_says(known, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["threshold", "what-if", "--db", known.url, "--threshold", "0.6", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    engine = create_engine(known.url)
    with engine.connect() as connection:
        rows = connection.execute(text(_FLIPS_SQL), {"cur": 0.5, "new": 0.6}).mappings().all()
    engine.dispose()
    assert figures["good_to_bad"] == {r["truth"]: 0 for r in rows}  # raising the threshold only clears parts
    assert figures["bad_to_good"] == {r["truth"]: r["bad_to_good"] for r in rows}
    assert figures["flips"] == sum(r["bad_to_good"] for r in rows) > 0
    reviewed = figures["reviewed_proposed"]
    assert reviewed["miss"]["low"] <= reviewed["miss"]["rate"] <= reviewed["miss"]["high"]
    assert figures["validation_proposed"]["miss"]["count"] == sum(s < 0.6 for s in VALIDATION["bad"])
    assert figures["misses_validation_defects"] is False

    assert main(["threshold", "what-if", "--db", known.url, "--threshold", "0.7"]) == 0
    printed = capsys.readouterr().out
    assert "parts change verdict" in printed and "WARNING: 0.7000 misses 1 defect(s)" in printed


def test_set_needs_a_supervisor_and_rollback_is_a_change(
    known,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = ["--db", known.url]
    monkeypatch.delenv("INSPECTOR_PASSWORD", raising=False)
    assert main(["threshold", "set", "0.55", "--reason", "x", *db, "--user", "sara"]) == 2  # no password
    assert "no password for sara" in capsys.readouterr().err
    assert main(["threshold", "set", "0.55", "--reason", "x", *db, *_as(monkeypatch, "sara", "guess")]) == 2
    assert "wrong user name or password" in capsys.readouterr().err
    assert main(["threshold", "set", "0.55", "--reason", "x", *db, *_as(monkeypatch, "otto")]) == 2
    assert "otto may not change a threshold" in capsys.readouterr().err
    # Past a validation defect: a warning that stops it, unless accepted.
    assert main(["threshold", "set", "0.7", "--reason", "fewer rejects", *db, *_as(monkeypatch, "sara")]) == 2
    assert "misses 1 defect(s) of the bundle's validation set; nothing changed" in capsys.readouterr().err

    password_file = known.db.parent / "sara.txt"
    password_file.write_text(PASSWORDS["sara"] + "\n")
    set_args = ["threshold", "set", "0.55", "--reason", "fewer false rejects", *db]
    assert main([*set_args, "--user", "sara", "--password-file", str(password_file)]) == 0
    assert "threshold 0.5000 -> 0.5500 by sara" in capsys.readouterr().out
    assert main(["threshold", "rollback", "1", *db, *_as(monkeypatch, "sara")]) == 0
    capsys.readouterr()
    assert main(["threshold", "history", *db, "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [(h["user"], h["old"], h["new"]) for h in history][-3:] == [
        ("system", None, 0.5),
        ("sara", 0.5, 0.55),
        ("sara", 0.55, 0.5),
    ]
    assert history[-1]["reason"].startswith("rollback to change 1")

    with VisualLog(known.url, media_root=known.media_root, station=STATION) as log:
        changes = log.threshold_changes()
        events = [(e.user, e.event) for e in log.access.events(limit=None)]
    shown = changes[1].evidence  # the what-if shown before the change, kept with it
    assert shown is not None and (shown["current"], shown["proposed"]) == (0.5, 0.55)
    assert shown["flips"] == sum(0.5 <= s < 0.55 for s in known.scores.values())
    assert changes[2].evidence == {"rollback_to": 1}
    assert ("sara", "login_failed") in events and ("otto", "denied") in events


# ---------------------------------------------------------------------------- a running station


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, INSPECTOR_HOME=str(home), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _rows(db: Path) -> list[tuple[str, float | None]]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT source_ref, threshold FROM decisions ORDER BY seq").fetchall()
    except sqlite3.OperationalError:
        return []


def _wait(condition, limit_s: float, proc: subprocess.Popen[bytes]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the station exited ({proc.returncode}): {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _drop(picture: Path, inbox: Path, name: str) -> None:
    staged = inbox.parent / name
    shutil.copyfile(picture, staged)
    os.replace(staged, inbox / name)  # renamed into place: whole at once


@pytest.mark.slow
def test_a_change_reaches_the_running_station_on_its_next_part_and_survives_a_restart(
    tiny_model: Path,
    pair_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, home, db = tmp_path / "inbox", tmp_path / "home", tmp_path / "log.sqlite"
    inbox.mkdir()
    url = f"sqlite:///{db}"
    with VisualLog(url, media_root=home / "media", station=STATION) as log:
        log.add_user("admin", role="admin", password=PASSWORDS["admin"])
        admin = log.authenticate("admin", PASSWORDS["admin"])
        log.add_user("sara", role="supervisor", password=PASSWORDS["sara"], actor=admin)
    pictures = sorted(pair_data.rglob("*.png"))  # different bytes: a repeated file is a duplicate
    cmd = [
        sys.executable, "-m", "core.cli", "run", "--headless", "--device", "cpu",
        "--source", f"hotfolder:{inbox}", "--model", str(tiny_model),
        "--db", url, "--station", STATION, "--summary-s", "0",
    ]  # fmt: skip
    station = subprocess.Popen(cmd, env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _drop(pictures[0], inbox, "first.png")
        _wait(lambda: len(_rows(db)) == 1, 120, station)
        started_at = _rows(db)[0][1]

        set_args = ["threshold", "set", "0.97", "--reason", "trial: fewer rejects", "--db", url]
        assert main([*set_args, "--accept-validation-misses", *_as(monkeypatch, "sara")]) == 0
        assert "threshold" in capsys.readouterr().out
        # Another process's change is read before any part that comes THRESHOLD_POLL_S after it.
        from core.station.runtime import THRESHOLD_POLL_S

        time.sleep(THRESHOLD_POLL_S + 0.1)
        _drop(pictures[1], inbox, "second.png")
        _wait(lambda: len(_rows(db)) == 2, 60, station)
        source, threshold = _rows(db)[1]
        assert source.endswith("second.png") and threshold == 0.97  # the next part, no restart

        station.send_signal(signal.SIGTERM)
        assert station.wait(timeout=30) == 0
    finally:
        if station.poll() is None:
            station.kill()

    # A restart starts at the threshold last recorded, not the model's.
    from core.station.config import StationConfig
    from core.station.runtime import build_runtime

    config = StationConfig(
        source=f"hotfolder:{inbox}",
        model=tiny_model,
        db_url=url,
        media_root=home / "media",
        station_name=STATION,
    )
    runtime = build_runtime(config)
    try:
        assert runtime.threshold == 0.97 and started_at != 0.97
        # Rollback to the model's threshold (the station's own first change) reaches it too.
        assert main(["threshold", "rollback", "1", "--db", url, *_as(monkeypatch, "sara")]) == 0
        assert runtime.poll_threshold(force=True) == started_at
    finally:
        runtime.close()
