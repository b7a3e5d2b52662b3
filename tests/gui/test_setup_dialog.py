"""The set-up dialog: a set-up is checked as the station will use it, refused in plain words next
to the field that is wrong, and once it checks out, saved and used again at the next start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.station.config import StationConfig
from core.storage import VisualLog
from inspector_gui.setup_dialog import SetupDialog
from inspector_gui.station_settings import default_config_file, load_station_config


def _fill(
    dialog: SetupDialog, *, name: str, kind: str, target: str, model: Path | str, database: str
) -> None:
    dialog.station_name.setText(name)
    dialog.source_kind.setCurrentIndex(dialog.source_kind.findData(kind))
    dialog.source_target.setText(target)
    dialog.model.setText(str(model))
    dialog.database.setText(database)
    dialog.expected_interval.setValue(12.5)


def _open(qtbot, config_file: Path, **options) -> SetupDialog:
    dialog = SetupDialog(config_file, **options)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _check(qtbot, dialog: SetupDialog):
    with qtbot.waitSignal(dialog.checked, timeout=60_000) as blocker:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


@pytest.fixture
def corrupt_model(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model whose weights file was cut short (a copy that broke off)."""
    from core.model.bundle import WEIGHTS_FILE

    copy = tmp_path / "corrupt-model"
    shutil.copytree(tiny_model, copy)
    weights = copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return copy


def test_a_corrupt_model_a_missing_folder_and_a_read_only_log_are_refused_with_reasons(
    qtbot, tmp_path: Path, corrupt_model: Path
) -> None:
    read_only = tmp_path / "readonly.sqlite"
    VisualLog(f"sqlite:///{read_only}", media_root=tmp_path / "media").close()
    config_file = tmp_path / "config" / "station.json"
    dialog = _open(qtbot, config_file)
    _fill(
        dialog,
        name="line-3",
        kind="hotfolder",
        target=str(tmp_path / "no-such-inbox"),
        model=corrupt_model,
        # SQLite opened read-only: reachable, but every write is refused (as for a user without
        # write rights; the tests run as root, for whom file modes do not count).
        database=f"sqlite:///file:{read_only}?mode=ro&uri=true",
    )
    result = _check(qtbot, dialog)
    assert set(result.problems) == {"source", "model", "database"}
    # The reasons are shown next to their fields, in words, with the fix.
    assert dialog.errors["source"].isVisible()
    assert "does not exist" in dialog.errors["source"].text() and "mkdir" in dialog.errors["source"].text()
    assert dialog.errors["model"].isVisible()
    assert "does not match" in dialog.errors["model"].text()  # the weights' hash, cut short
    assert "copy the whole bundle" in dialog.errors["model"].text()
    assert "readonly" in dialog.errors["database"].text()
    assert not dialog.errors["station_name"].isVisible()
    assert dialog.isVisible() and dialog.config is None
    assert not config_file.exists()  # nothing saved


def test_a_log_that_cannot_be_created_is_refused(qtbot, tmp_path: Path, tiny_model: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    dialog = _open(qtbot, tmp_path / "station.json")
    _fill(dialog, name="x", kind="hotfolder", target=str(inbox), model=tiny_model,
          database=str(tmp_path / "a-file" / "log.sqlite"))  # fmt: skip
    result = _check(qtbot, dialog)
    assert set(result.problems) == {"database"}
    assert "cannot be created" in dialog.errors["database"].text()


def test_a_valid_set_up_is_saved_and_used_at_the_next_start(qtbot, tmp_path: Path, tiny_model: Path) -> None:
    from inspector_gui.app import startup_config

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    log_file = tmp_path / "logs" / "line-3.sqlite"
    config_file = default_config_file()
    assert not config_file.exists()
    asked: list[int] = []

    def _ask(initial):  # noqa: ANN001, ANN202 - the first start asks, as the app would
        asked.append(1)
        dialog = _open(qtbot, config_file, initial=initial)
        _fill(
            dialog,
            name="line-3",
            kind="hotfolder",
            target=str(inbox),
            model=tiny_model,
            database=str(log_file),
        )
        result = _check(qtbot, dialog)
        assert result.ok, result.problems
        assert not dialog.isVisible()  # accepted
        return dialog.config

    first = startup_config(None, ask=_ask, environ={})
    assert asked == [1] and first is not None
    assert first.source == f"hotfolder:{inbox}" and first.station_name == "line-3"
    assert first.db_url == f"sqlite:///{log_file}"
    assert log_file.exists()  # created and migrated by the check
    saved = json.loads(config_file.read_text())
    assert saved["station_name"] == "line-3" and "backoff_max_s" not in saved  # defaults left out
    assert saved["expected_part_interval_s"] == 12.5 == first.expected_part_interval_s

    # The next start: the saved set-up, no dialog.
    second = startup_config(None, ask=lambda _initial: pytest.fail("asked again"), environ={})
    assert second == first == load_station_config(config_file, environ={})
    assert isinstance(second, StationConfig)


def test_a_given_config_file_is_used_and_a_broken_one_asks(qtbot, tmp_path: Path, tiny_model: Path) -> None:
    from inspector_gui.app import startup_config

    given = tmp_path / "given.json"
    given.write_text(json.dumps({"source": f"hotfolder:{tmp_path}", "model": str(tiny_model)}))
    config = startup_config(given, ask=lambda _initial: pytest.fail("asked"), environ={})
    assert config is not None and config.model == tiny_model

    default_config_file().parent.mkdir(parents=True, exist_ok=True)
    default_config_file().write_text("{ not json")
    asked: list[object] = []
    assert startup_config(None, ask=lambda initial: asked.append(initial), environ={}) is None
    assert asked == [None]  # a broken file: set up again from scratch
