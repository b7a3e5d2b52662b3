"""Where the station's set-up is remembered: a ``StationConfig`` JSON file in the user's config dir.

``inspector-gui`` reads it at every start (``--config FILE`` names another one) and the set-up
dialog writes it. The file holds only what differs from the defaults (and the schema version),
so it stays readable and a later default reaches stations that never chose otherwise; it is the
same kind of file as ``inspector run --config``, so a set-up made in the window runs headless too.

The folder is the platform's user config dir (``~/.config/inspector`` on Linux), or
``$INSPECTOR_HOME/config`` when ``INSPECTOR_HOME`` is set (tests, Docker, several stations on one
machine), as for the data dir.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from platformdirs import user_config_path

from core.common.fileio import write_atomic
from core.station.config import StationConfig

CONFIG_FILE_NAME = "station.json"


def config_dir() -> Path:
    """The folder of the station's set-up files (not created here)."""
    home = os.environ.get("INSPECTOR_HOME")
    if home:
        return Path(home).expanduser() / "config"
    return user_config_path("inspector", appauthor=False)


def default_config_file() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def load_station_config(path: Path, environ: Mapping[str, str] | None = None) -> StationConfig:
    """The set-up from ``path``, with ``INSPECTOR_<FIELD>`` variables over it (as ``inspector run``).

    Raises:
        UserError: The file cannot be read or is not a JSON object.
        pydantic.ValidationError: A value breaks the schema.
    """
    return StationConfig.load(path, environ=os.environ if environ is None else environ)


def config_file_values(config: StationConfig) -> dict[str, Any]:
    """What the file keeps: the fields that differ from the defaults, and the schema version."""
    values = config.model_dump(mode="json", exclude_defaults=True)
    values.pop("schema_version", None)
    return {"schema_version": config.schema_version, **values}


def save_station_config(config: StationConfig, path: Path) -> None:
    """Write the set-up atomically (a crash leaves the old file or the new one, never half)."""
    text = json.dumps(config_file_values(config), indent=2, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"))
