"""StationConfig: every field documented, refused when wrong, read from a file, the environment
and flags in that order of precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from core.common.errors import UserError
from core.station.config import OPTIONS_BY_KIND, SCHEMA_VERSION, SourceOptions, StationConfig

BASE = {"source": "hotfolder:/srv/inbox", "model": "/srv/models/discs"}


@pytest.mark.parametrize("model", [StationConfig, SourceOptions])
def test_every_field_has_a_title_and_a_description(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.title and field.description, name
    schema = model.model_json_schema()
    assert schema["title"] and all("description" in p for p in schema["properties"].values())


def test_every_source_option_belongs_to_some_kind_of_source() -> None:
    assert set().union(*OPTIONS_BY_KIND.values()) == set(SourceOptions.model_fields)


def test_defaults_and_schema_version() -> None:
    config = StationConfig.model_validate(BASE)
    assert config.schema_version == SCHEMA_VERSION
    assert (config.station_name, config.device, config.backend, config.max_batch) == (
        "station-1",
        "auto",
        "auto",
        8,
    )
    assert config.source_kwargs() == {} and config.outputs == ("jsonl",)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"threshold": 1.5}, "less than or equal to 1"),
        ({"source": "ftp:/srv/x"}, "unknown source kind 'ftp'"),
        ({"source": "camera:"}, "names no target"),
        ({"source_options": {"queue_size": 3}}, "a hotfolder source does not take queue_size"),
        (
            {"source": "video:/x.avi", "source_options": {"settle_s": 1}},
            "a video source does not take settle_s",
        ),
        ({"source_options": {"settle": 1}}, "Extra inputs are not permitted"),
        ({"backoff_first_s": 5, "backoff_max_s": 1}, "backoff_max_s must not be below backoff_first_s"),
        ({"schema_version": SCHEMA_VERSION + 1}, "newer than this program"),
        ({"backend": "tensorrt"}, "Input should be 'auto', 'torch' or 'onnx'"),
    ],
)
def test_wrong_settings_are_refused_with_their_name(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        StationConfig.model_validate({**BASE, **fields})


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "station.json"
    path.write_text(
        json.dumps(
            {**BASE, "station_name": "from-file", "threshold": 0.3, "source_options": {"settle_s": 2.0}}
        ),
        encoding="utf-8",
    )
    config = StationConfig.load(path, environ={})
    assert (config.station_name, config.threshold, config.source_options.settle_s) == ("from-file", 0.3, 2.0)

    environ = {
        "INSPECTOR_STATION_NAME": "from-env",
        "INSPECTOR_THRESHOLD": "0.4",
        "INSPECTOR_BACKGROUND_WRITER": "false",
        "INSPECTOR_OUTPUTS": "jsonl, mqtt://broker:1883/line",
        "INSPECTOR_SOURCE_OPTIONS": '{"settle_s": 1.5, "scan_interval_s": 0.5}',
        "INSPECTOR_MAX_PARTS": "",  # empty: not set
        "INSPECTOR_HOME": "/elsewhere",  # not a field: ignored
    }
    config = StationConfig.load(path, environ=environ)
    assert (config.station_name, config.threshold, config.background_writer) == ("from-env", 0.4, False)
    assert config.outputs == ("jsonl", "mqtt://broker:1883/line") and config.max_parts is None
    assert config.source_kwargs() == {"settle_s": 1.5, "scan_interval_s": 0.5}

    # Flags win; a flag not given (None) leaves the value alone; source options merge.
    config = StationConfig.load(
        path, environ=environ, station_name="from-flag", threshold=None, source_options={"watch": False}
    )
    assert (config.station_name, config.threshold) == ("from-flag", 0.4)
    assert config.source_kwargs() == {"settle_s": 1.5, "scan_interval_s": 0.5, "watch": False}


def test_environment_values_are_validated_like_any_other() -> None:
    with pytest.raises(ValidationError, match="threshold"):
        StationConfig.load(environ={"INSPECTOR_THRESHOLD": "high"}, **BASE)
    with pytest.raises(UserError, match="INSPECTOR_SOURCE_OPTIONS is not valid JSON"):
        StationConfig.load(environ={"INSPECTOR_SOURCE_OPTIONS": "{settle_s: 1}"}, **BASE)


def test_an_unreadable_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read the station configuration"):
        StationConfig.load(tmp_path / "missing.json", environ={})
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(UserError, match="a JSON object of fields"):
        StationConfig.load(tmp_path / "list.json", environ={})


def test_the_config_is_frozen() -> None:
    config = StationConfig.model_validate(BASE)
    with pytest.raises(ValidationError):
        config.threshold = 0.2  # type: ignore[misc]
