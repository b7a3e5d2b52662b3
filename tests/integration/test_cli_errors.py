"""The command line's one error policy: a user's mistake is one line and status 2; a bug keeps its
traceback and status 1."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.cli import main

# The module, not the function of the same name that ``core.cli`` exports.
cli_main = importlib.import_module("core.cli.main")

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_bundle_is_one_line_and_status_2(tmp_path: Path) -> None:
    image = tmp_path / "part.png"
    image.write_bytes(b"not looked at")
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "predict", str(tmp_path / "no-such-bundle"), str(image)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, INSPECTOR_TRACEBACK=""),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("inspector: ") and "no-such-bundle" in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_training_settings_are_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("inspector: invalid Training configuration: epochs:")


def test_a_missing_settings_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "settings.json"
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--config", str(missing)]) == 2
    assert capsys.readouterr().err == f"inspector: No such file or directory: {missing}\n"


@pytest.fixture
def command_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real command module, registered as the CLI's own are, whose commands fail."""
    (tmp_path / "cli_test_commands.py").write_text(
        textwrap.dedent(
            """
            from core.common.errors import UserError


            def register(sub):
                sub.add_parser("explode").set_defaults(handler=_explode)
                sub.add_parser("refuse").set_defaults(handler=_refuse)


            def _explode(args):
                return {}["a key that is not there"]  # a bug


            def _refuse(args):
                raise UserError("the part number must have 8 digits,\\n not 7")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", (*cli_main.COMMAND_MODULES, "cli_test_commands"))


@pytest.mark.usefixtures("command_module")
def test_a_bug_keeps_its_traceback_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explode"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in _explode" in err and "KeyError: 'a key that is not there'" in err
    assert err.rstrip().endswith("inspector: internal error in 'explode' (a bug; the traceback is above)")


@pytest.mark.usefixtures("command_module")
def test_a_user_error_is_one_line_unless_tracebacks_are_asked_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INSPECTOR_TRACEBACK", raising=False)
    assert main(["refuse"]) == 2
    assert capsys.readouterr().err == "inspector: the part number must have 8 digits, not 7\n"
    monkeypatch.setenv("INSPECTOR_TRACEBACK", "1")
    assert main(["refuse"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("inspector: the part number must have 8 digits, not 7\n")


def test_a_mistyped_number_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "out", "--size", "16"])
    assert exit_.value.code == 2
    assert "argument --size: 16 is out of range (must be >= 32)" in capsys.readouterr().err


_WITHOUT_TRAINING_EXTRA = """
import runpy, sys
for name in ("torch", "torchvision", "pytorch_grad_cam", "onnx", "sklearn", "matplotlib", "safetensors"):
    sys.modules[name] = None  # as on a station installed without the [train] extra
sys.argv = ["inspector", *sys.argv[1:]]
runpy.run_module("core.cli", run_name="__main__")
"""


def test_a_command_needing_a_left_out_extra_names_the_extra(pair_data: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TRAINING_EXTRA, "train", str(pair_data), "--out", str(tmp_path / "run"),
         "--arch", "tiny_cnn", "--epochs", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, INSPECTOR_TRACEBACK=""),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'inspector[train]'" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
