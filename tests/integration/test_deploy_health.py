"""``inspector doctor --health``, the Docker image's HEALTHCHECK: healthy while a station holds
the hot folder, unhealthy (exit 1, the reason on one line) when none does, when the one that did
is gone, or when the bundle has gone; it never takes the inbox's lock itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.cli import main
from core.sources.inbox_lock import LOCK_NAME, InboxLock


def _health(
    capsys: pytest.CaptureFixture[str], inbox: Path, model: Path, db: str
) -> tuple[int, dict[str, str]]:
    status = main(["doctor", "--health", "--source", f"hotfolder:{inbox}", "--model", str(model), "--db", db])
    out = capsys.readouterr().out
    lines = {line.split(":")[0].split()[-1]: line for line in out.splitlines()}
    return status, lines


@pytest.fixture
def station_setup(tiny_model: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox, tiny_model, f"sqlite:///{tmp_path / 'log.sqlite'}"


def test_healthy_while_a_station_holds_the_inbox(
    station_setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, model, db = station_setup
    lock = InboxLock(inbox)  # what the hot folder takes when a station opens it
    lock.acquire()
    try:
        status, lines = _health(capsys, inbox, model, db)
        assert status == 0, lines
        assert lines["station"].startswith("ok ") and f"pid {os.getpid()}" in lines["station"]
        assert all(line.startswith("ok ") for line in lines.values()), lines
        assert set(lines) == {"station", "database", "disk", "model"}
        assert lock.held and (inbox / LOCK_NAME).exists()  # the check read it, and let it be
    finally:
        lock.release()


def test_unhealthy_when_no_station_holds_the_inbox_and_the_lock_is_left_free(
    station_setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, model, db = station_setup
    status, lines = _health(capsys, inbox, model, db)
    assert status == 1
    assert lines["station"].startswith("FAIL") and f"no station holds the inbox {inbox}" in lines["station"]
    assert "fix:" in lines["station"]
    assert not (inbox / LOCK_NAME).exists()  # read-only: a starting station finds it free
    taker = InboxLock(inbox)
    taker.acquire()
    taker.release()


def test_unhealthy_when_the_station_that_held_the_inbox_is_gone(
    station_setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, model, db = station_setup
    # A station killed with SIGKILL leaves its lock file naming a process that no longer exists.
    child = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    dead_pid = int(child.stdout)
    lock = InboxLock(inbox)
    lock.acquire()
    text = (inbox / LOCK_NAME).read_text().replace(f"pid {os.getpid()}", f"pid {dead_pid}")
    lock.release()
    (inbox / LOCK_NAME).parent.mkdir(exist_ok=True)
    (inbox / LOCK_NAME).write_text(text)
    status, lines = _health(capsys, inbox, model, db)
    assert status == 1
    assert lines["station"].startswith("FAIL") and f"(pid {dead_pid}," in lines["station"]
    assert "is gone" in lines["station"]
    taker = InboxLock(inbox)  # and the real lock agrees: a new station takes the inbox over
    taker.acquire()
    taker.release()


def test_unhealthy_when_the_bundle_has_gone(
    station_setup: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, model, db = station_setup
    copy = tmp_path / "bundle"
    shutil.copytree(model, copy)
    lock = InboxLock(inbox)
    lock.acquire()
    try:
        assert _health(capsys, inbox, copy, db)[0] == 0
        shutil.rmtree(copy)
        status, lines = _health(capsys, inbox, copy, db)
    finally:
        lock.release()
    assert status == 1
    assert lines["model"].startswith("FAIL") and str(copy) in lines["model"]
    assert lines["station"].startswith("ok ")


def test_unhealthy_without_a_station_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INSPECTOR_SOURCE", raising=False)
    monkeypatch.delenv("INSPECTOR_MODEL", raising=False)
    status = main(["doctor", "--health"])
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith("FAIL  config:") and "source" in out and "model" in out
