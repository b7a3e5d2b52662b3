"""Online backup, and the commands for users, reviews and keep marks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from storage_helpers import MODEL_HASH, make_inspection, make_part, media_files

from core.cli import main
from core.common.types import Verdict
from core.storage import VisualLog
from core.storage.backup import backup


def test_online_backup_while_the_station_writes(
    sqlite_url: str, open_log: Callable[..., VisualLog], media_root: Path, tmp_path: Path
) -> None:
    log = open_log(sqlite_url)
    for score in (0.1, 0.9, 0.4):
        log.record(make_part(), make_inspection(score=score), model_hash=MODEL_HASH)
    reader = log.engine.connect()  # a report in the middle of reading
    reader.execute(text("SELECT count(*) FROM decisions")).scalar()
    try:
        result = backup(
            sqlite_url, tmp_path / "backup", media_root=media_root, now=datetime(2025, 3, 14, tzinfo=UTC)
        )
        log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)  # the station was never blocked
    finally:
        reader.close()

    assert result.database == tmp_path / "backup" / "inspector-20250314T000000Z.sqlite"
    assert result.media_files == 6 and len(media_files(tmp_path / "backup" / "media")) == 6
    with sqlite3.connect(result.database) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    with VisualLog(f"sqlite:///{result.database}", media_root=tmp_path / "backup" / "media") as restored:
        assert restored.count() == 3 and restored.verify().ok
        decision = restored.latest(1)[0]
        assert restored.load_heatmap(decision) is not None

    again = backup(sqlite_url, tmp_path / "backup", media_root=media_root)
    assert again.media_files == 2  # only the new decision's image and heatmap

    with pytest.raises(ValueError, match="pg_dump"):
        backup("postgresql+psycopg://u@localhost/db", tmp_path / "x")


def test_backup_command(
    sqlite_url: str,
    open_log: Callable[..., VisualLog],
    media_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    open_log(sqlite_url).record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    dest = tmp_path / "nightly"
    assert main(["backup", str(dest), "--db", sqlite_url, "--media-root", str(media_root), "--media"]) == 0
    out = capsys.readouterr().out
    assert "database: " + str(dest) in out and "media: 2 new files" in out


def test_users_review_and_keep_commands(
    sqlite_url: str,
    open_log: Callable[..., VisualLog],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = open_log(sqlite_url)
    decision = log.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    db = ["--db", sqlite_url]

    def as_user(name: str, new_password: str | None = None) -> list[str]:
        monkeypatch.setenv("INSPECTOR_PASSWORD", f"{name}-password")
        if new_password is not None:
            monkeypatch.setenv("INSPECTOR_NEW_PASSWORD", new_password)
        return ["--user", name]

    # The first admin needs no log-in; later users need an admin's.
    monkeypatch.setenv("INSPECTOR_NEW_PASSWORD", "admin-password")
    assert main(["users", *db, "add", "admin", "--role", "admin"]) == 0
    assert "as the first admin" in capsys.readouterr().out
    assert main(["users", *db, "add", "eve", "--role", "admin"]) == 2  # not the first any more
    add = ["users", *db, "add", "anna", "--role", "supervisor", "--display-name", "Anna S."]
    assert main([*add, *as_user("admin", "anna-password")]) == 0
    assert main(["users", *db, "add", "otto", "--role", "operator", *as_user("admin", "otto-password")]) == 0
    assert main(["users", *db]) == 0
    listed = capsys.readouterr().out
    assert "anna                 supervisor  Anna S." in listed and "system" in listed

    review = ["review", decision.part_id, "--verdict", "good", *db]
    assert main([*review, "--comment", "dust", *as_user("anna")]) == 0
    assert f"part {decision.part_id}: overridden as good by anna" in capsys.readouterr().out
    assert main([*review, *as_user("otto")]) == 2
    assert "otto may not review decisions" in capsys.readouterr().err
    monkeypatch.setenv("INSPECTOR_PASSWORD", "not-annas-password")
    assert main([*review, "--user", "anna"]) == 2
    assert "wrong user name or password" in capsys.readouterr().err
    assert main(["review", "0" * 26, "--verdict", "bad", *db, *as_user("anna")]) == 2

    assert main(["keep", decision.part_id, "--reason", "customer complaint", *db, *as_user("anna")]) == 0
    assert main(["users", *db, "deactivate", "anna", *as_user("admin")]) == 0
    assert main(["keep", decision.part_id, "--reason", "again", *db, *as_user("anna")]) == 2
    assert "deactivated" in capsys.readouterr().err

    [review] = log.reviews_of(decision.part_id)
    assert (review.user, review.verdict, review.comment) == ("anna", Verdict.GOOD, "dust")
    assert log.verify().ok
    # Kept and reviewed: no retention removes it, however old.
    assert log.prune(now=datetime(2099, 1, 1, tzinfo=UTC)).decisions == 0
