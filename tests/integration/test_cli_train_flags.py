"""The flags of ``inspector train`` are made from ``TrainConfig``: every setting is a flag, and every
flag reaches its setting."""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from core.cli import build_parser
from core.cli.flags import add_model_flags
from core.cli.training import NOT_FLAGS, train_config
from core.training.fit import TrainConfig


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["train"]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def test_every_setting_but_the_schema_version_is_a_flag_with_its_description() -> None:
    actions = {a.dest: a for a in _train_parser()._actions if a.option_strings}
    assert {"schema_version"} == NOT_FLAGS
    for name, field in TrainConfig.model_fields.items():
        if name in NOT_FLAGS:
            assert name not in actions
            continue
        action = actions[name]
        assert f"--{name.replace('_', '-')}" in action.option_strings
        if name != "name":  # its default is the --out folder's name, said in its own words
            assert action.help is not None and (field.description or "")[:30] in action.help.replace(
                "%%", "%"
            )
    # The rest are where the run goes, not what it does.
    assert set(actions) - set(TrainConfig.model_fields) == {"help", "out", "config"}


def _other_value(name: str, default: Any) -> Any:
    """A valid value of the setting that is not its default (found by asking the model)."""
    annotation = TrainConfig.model_fields[name].annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    candidates: list[Any]
    if typing.get_origin(annotation) is Literal:
        candidates = list(args)
    elif annotation is bool:
        candidates = [not default]
    elif name == "architecture":
        candidates = ["tiny_cnn"]
    elif name == "class_map":
        candidates = [{"ok": "good", "nok": "bad"}]
    elif name == "sample_per_class":
        candidates = [{"good": 30, "bad": 12}]
    else:
        numbers = [3, 40, 0.25, 1, 2, 0.5]
        candidates = [
            *(c for c in numbers if isinstance(default, (int, float)) and c != default),
            *numbers,
            "x",
        ]
    for value in candidates:
        if value == default:
            continue
        try:
            TrainConfig.model_validate({name: value})
        except ValidationError:
            continue
        return value
    raise AssertionError(f"no test value for {name}")


def _as_flag(name: str, value: Any) -> list[str]:
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return [flag if value else f"--no-{name.replace('_', '-')}"]
    if isinstance(value, dict):
        return [flag, ",".join(f"{k}={v}" for k, v in value.items())]
    return [flag, str(value)]


def test_every_flag_reaches_its_setting(tmp_path: Path) -> None:
    defaults = TrainConfig()
    wanted = {
        name: _other_value(name, getattr(defaults, name))
        for name in TrainConfig.model_fields
        if name not in NOT_FLAGS
    }
    argv = ["train", "data", "--out", str(tmp_path / "run")]
    for name, value in wanted.items():
        argv += _as_flag(name, value)
    config = train_config(build_parser().parse_args(argv))
    assert {name: getattr(config, name) for name in wanted} == wanted


def test_flags_override_the_settings_file_and_the_name_defaults_to_the_run_folder(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"epochs": 3, "lr": 0.1, "augment": False}))
    args = build_parser().parse_args(
        ["train", "data", "--out", str(tmp_path / "run-7"), "--config", str(settings), "--epochs", "5",
         "--augment"]
    )  # fmt: skip
    config = train_config(args)
    assert (config.epochs, config.lr, config.augment, config.name) == (5, 0.1, True, "run-7")


def test_a_new_setting_becomes_a_flag_and_an_unknown_type_is_refused() -> None:
    class Settings(BaseModel):
        passes: int = Field(2, description="Passes over the data, at 100% each.")
        mode: Literal["fast", "slow"] = Field("fast", description="How.")
        limits: dict[str, float] | None = Field(None, description="Per class.")

    parser = argparse.ArgumentParser()
    assert add_model_flags(parser, Settings) == ["passes", "mode", "limits"]
    args = parser.parse_args(["--passes", "4", "--mode", "slow", "--limits", "good=0.5, bad = 2"])
    assert (args.passes, args.mode, args.limits) == (4, "slow", {"good": 0.5, "bad": 2.0})
    assert "Passes over the data, at 100% each. (default: 2)" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--limits", "good"])

    class Odd(BaseModel):
        when: list[int] = Field(default_factory=list, description="No flag form.")

    with pytest.raises(TypeError, match="'when'"):
        add_model_flags(argparse.ArgumentParser(), Odd)
