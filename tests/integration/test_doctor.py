"""``inspector doctor``: a healthy setup exits 0; a missing model, an unreachable database, a
missing hot folder and a missing Qt system library each give a FAIL line that says what to do,
and exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from native_libs import plugin_missing

from core.cli import main
from core.station import doctor, doctor_station
from core.station.doctor import Status

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_DB = "postgresql+psycopg://x:y@127.0.0.1:1/nope"


def _lines(out: str, name: str) -> list[str]:
    return [line for line in out.splitlines() if line.split(":")[0].split()[-1:] == [name]]


def _current_sqlite(tmp_path: Path) -> str:
    from core.storage import VisualLog

    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    with VisualLog(url, media_root=tmp_path / "media", station="doctor"):
        pass  # made and migrated to the newest schema
    return url


def test_a_healthy_station_exits_0_with_every_check_ok(tiny_model: Path, tmp_path: Path) -> None:
    from core.model.bundle import read_card

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    url = _current_sqlite(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "doctor", "--headless", "--source", f"hotfolder:{inbox}",
         "--model", str(tiny_model), "--db", url, "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, INSPECTOR_HOME=str(tmp_path / "home")),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for name in ("python", "onnxruntime", "opencv", "config", "source", "database", "disk", "model"):
        assert _lines(result.stdout, name)[0].startswith("ok "), result.stdout
    assert "schema at revision" in _lines(result.stdout, "database")[0]
    assert read_card(tiny_model).content_sha256[:12] in _lines(result.stdout, "model")[0]
    assert not _lines(result.stdout, "qt")  # --headless: no window to check
    assert sorted(p.name for p in inbox.iterdir()) == [".inspector"]  # the probe and the lock are gone
    assert not list((inbox / ".inspector").iterdir())


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["doctor", "--headless", *args])
    return status, capsys.readouterr().out


def test_a_missing_model_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _doctor(
        capsys, "--model", str(tmp_path / "no-such-bundle"), "--db", _current_sqlite(tmp_path)
    )
    assert status == 1
    (line,) = _lines(out, "model")
    assert line.startswith("FAIL ") and "no-such-bundle is not a model bundle" in line and "fix:" in line


def test_a_tampered_model_fails_naming_the_hash(
    tampered_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _doctor(capsys, "--model", str(tampered_model), "--db", _current_sqlite(tmp_path))
    assert status == 1
    (line,) = _lines(out, "model")
    assert line.startswith("FAIL ") and "does not match the card" in line


def test_an_unreachable_database_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _doctor(capsys, "--db", UNREACHABLE_DB)
    assert status == 1
    (line,) = _lines(out, "database")
    assert line.startswith("FAIL ") and "127.0.0.1" in line and "fix:" in line
    assert ":y@" not in line  # the password is not printed


def test_a_database_newer_than_the_station_fails(tmp_path: Path) -> None:
    import sqlite3

    url = _current_sqlite(tmp_path)
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    check = doctor_station.check_database(url)
    assert check.status is Status.FAIL and "update the station software" in check.line()


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "later" / "log.sqlite"
    check = doctor_station.check_database(f"sqlite:///{path}")
    assert check.status is Status.OK and "not created yet" in check.detail
    assert not path.exists() and not path.parent.exists()


def test_a_missing_hot_folder_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inbox = tmp_path / "no-inbox"
    status, out = _doctor(capsys, "--source", f"hotfolder:{inbox}", "--db", _current_sqlite(tmp_path))
    assert status == 1
    (line,) = _lines(out, "source")
    assert line.startswith("FAIL ") and f"{inbox} does not exist" in line and "mkdir -p" in line
    assert not inbox.exists()  # the doctor does not make it (the station would, and wait forever)


def test_an_invalid_configuration_fails_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "station.json"
    config.write_text('{"source": "hotfolder:/x", "modle": "/y"}', encoding="utf-8")
    status, out = _doctor(capsys, "--config", str(config), "--db", _current_sqlite(tmp_path))
    assert status == 1
    (line,) = _lines(out, "config")
    assert line.startswith("FAIL ") and "modle" in line and "model: Field required" in line


def test_soname_to_package_table() -> None:
    packages, unknown = doctor.apt_packages(
        ["libxcb-cursor.so.0", "libEGL.so.1", "libgthread-2.0.so.0", "libglib-2.0.so.0", "libweird.so.7"]
    )
    assert packages == ["libxcb-cursor0", "libegl1", "libglib2.0-0"]
    assert unknown == ["libweird.so.7"]
    assert doctor.APT_PACKAGES["libxkbcommon-x11.so.0"] == "libxkbcommon-x11-0"
    assert doctor.APT_PACKAGES["libxcb-render-util.so.0"] == "libxcb-render-util0"


@pytest.fixture
def plugin_missing_a_library(tmp_path: Path) -> Path:
    """A real shared object linking ``libinspectordoctorgone.so.1``, which is then deleted."""
    return plugin_missing(tmp_path, "libinspectordoctorgone.so.1")


def test_a_missing_qt_system_library_fails_naming_it(
    plugin_missing_a_library: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor.missing_libraries(plugin_missing_a_library) == ["libinspectordoctorgone.so.1"]
    monkeypatch.setattr(doctor, "xcb_plugin_path", lambda: plugin_missing_a_library)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert main(["doctor"]) == 1
    (line,) = _lines(capsys.readouterr().out, "qt")
    assert line.startswith("FAIL ") and "libinspectordoctorgone.so.1" in line and "apt-file search" in line


def test_the_real_xcb_plugin_is_checked_with_ldd() -> None:
    plugin = doctor.xcb_plugin_path()
    if plugin is None or not plugin.is_file() or shutil.which("ldd") is None:
        pytest.skip("needs PySide6's xcb plugin and ldd")
    missing = doctor.missing_libraries(plugin)
    assert missing is not None
    check = doctor.check_qt_libraries(plugin)
    assert (check.status is Status.OK) == (not missing), check.line()
    packages, _unknown = doctor.apt_packages(missing)
    assert all(name in check.line() for name in [*missing, *packages])


def test_disk_thresholds() -> None:
    gib = 1 << 30
    assert doctor_station.disk_status(int(0.5 * gib)) is Status.FAIL
    assert doctor_station.disk_status(2 * gib) is Status.WARN
    assert doctor_station.disk_status(50 * gib) is Status.OK


def test_python_too_old_fails() -> None:
    assert doctor.check_python((3, 10, 12)).status is Status.FAIL
    assert doctor.check_python((3, 11, 0)).status is Status.OK
